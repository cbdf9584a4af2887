"""Bearer-token authentication for the API (kept apart from views: DRF imports it early)."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from tasks_app.models import ApiToken
from tasks_app.net import client_address
from tasks_app.services.tokens import token_authenticate


class TokenCaller:
    """request.user for requests that carry an API token: a CI job, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False

    def __init__(self, token: ApiToken):
        self.token = token

    def get_username(self) -> str:
        return f"token:{self.token.hint}"

    def __str__(self):
        return self.get_username()


class BearerTokenAuthentication(BaseAuthentication):
    """Authorization: Bearer ecrp_..."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Send one token: Authorization: Bearer <token>.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        token = token_authenticate(raw=raw, address=client_address(request))
        if token is None:
            raise exceptions.AuthenticationFailed(
                "The token is not valid: unknown, revoked or expired."
            )
        return TokenCaller(token), token

    def authenticate_header(self, request):
        return 'Bearer realm="ecrportal"'
