"""Who the caller is: password sign-in, single sign-on, CI ID tokens, the portal as an
OIDC issuer."""
