"""API plumbing that DRF loads with its settings (kept apart from views: imported early)."""

from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.negotiation import BaseContentNegotiation

from tasks_app.identity.client_address import client_address
from tasks_app.lib import metrics
from tasks_app.lib.log_context import log_context_add
from tasks_app.models import ApiToken
from tasks_app.services.tokens import token_authenticate
from tasks_app.services.workload import (
    Addressed,
    WorkloadRefused,
    looks_like_jwt,
    workload_authenticate,
)


class TokenCaller:
    """request.user for requests that carry an API token: a CI job, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_superuser = False
    is_staff = False

    def __init__(self, token: ApiToken):
        self.token = token

    def get_username(self) -> str:
        return self.token.actor_name

    def __str__(self):
        return self.get_username()


class BearerTokenAuthentication(BaseAuthentication):
    """Authorization: Bearer ecrp_..."""

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != b"bearer":
            return None
        if len(header) != 2:
            metrics.authentication_failed("token")
            raise exceptions.AuthenticationFailed("Send one token: Authorization: Bearer <token>.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError:
            metrics.authentication_failed("token")
            raise exceptions.AuthenticationFailed("The token is not valid.") from None
        if looks_like_jwt(raw):
            try:
                kwargs = (getattr(request, "parser_context", None) or {}).get("kwargs") or {}
                workload = workload_authenticate(
                    raw=raw,
                    address=client_address(request),
                    addressed=Addressed(
                        kwargs.get("plan_key"),
                        kwargs.get("task_id"),
                        request.query_params.get("job"),
                    ),
                )
            except WorkloadRefused as e:
                metrics.authentication_failed("ci_id_token")
                raise exceptions.AuthenticationFailed(
                    f"The ID token is not accepted: {e}."
                ) from None
            log_context_add(actor=workload.actor_name)
            return TokenCaller(workload), workload
        token = token_authenticate(raw=raw, address=client_address(request))
        if token is None:
            metrics.authentication_failed("token")
            raise exceptions.AuthenticationFailed(
                "The token is not valid: unknown, revoked or expired."
            )
        log_context_add(actor=token.actor_name)
        return TokenCaller(token), token

    def authenticate_header(self, request):
        return 'Bearer realm="ecrportal"'


class FirstRenderer(BaseContentNegotiation):
    """Every endpoint has one representation (the schema: JSON, or YAML with ?format=yaml),
    so the full Accept-header negotiation is work without a purpose on the hot path."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        wanted = format_suffix or request.query_params.get("format")
        for renderer in renderers:
            if wanted is None or renderer.format == wanted:
                return renderer, renderer.media_type
        raise exceptions.NotFound(f"No {wanted} representation here.")
