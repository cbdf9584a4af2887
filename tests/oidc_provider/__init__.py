"""An OpenID Connect provider for the tests: django-oauth-toolkit in its own Django project,
run by gunicorn in a process of its own (tests/sso_provider.py starts it). It signs ID
tokens with its own RSA key and serves discovery, JWKS, token and userinfo endpoints, as a
company's identity provider would. Two of its people get deliberately bad ID tokens."""
