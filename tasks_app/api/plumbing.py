"""The HTTP API's plumbing: errors as {"error", "detail"}, the token of a request, schema hooks."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error
from rest_framework.views import exception_handler

from tasks_app.formats.error_body import error_body
from tasks_app.models import ApiToken


class Conflict(exceptions.APIException):
    """409: the request is understood, but the credentials cannot be served now."""

    status_code = status.HTTP_409_CONFLICT

    def __init__(self, code: str, detail: str):
        super().__init__(detail=detail, code=code)
        self.error = code


def handle_exception(exc, context):
    """Every API error as {"error": code, "detail": text}; never a stack trace."""
    if isinstance(exc, DjangoValidationError):  # a service's rule, as a form would show it
        exc = exceptions.ValidationError(as_serializer_error(exc))
    response = exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django's 500 handling (logged, no details shown)
    if isinstance(exc, Conflict):
        error = exc.error
    elif isinstance(exc, exceptions.ValidationError):
        error = "invalid"
    else:
        error = None
    detail = response.data
    if isinstance(detail, dict) and set(detail) == {"detail"}:
        detail = detail["detail"]
    body = error_body(response.status_code, detail, error)
    return Response(body, status=response.status_code, headers=_headers(response))


def _headers(response):
    return {
        k: v
        for k, v in response.items()
        if k.lower() in ("www-authenticate", "allow", "retry-after")
    }


def token_of(request) -> ApiToken | None:
    return request.auth if isinstance(request.auth, ApiToken) else None


class BearerTokenScheme(OpenApiAuthenticationExtension):
    """Documents the bearer tokens in the OpenAPI schema."""

    target_class = "tasks_app.api.authentication.BearerTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (ecrp_...) bound to a plan or a job.",
        }


ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {"type": "string", "description": "A code: invalid, not_found, expired, ..."},
        "detail": {"description": "What went wrong, in words (or an object per field)."},
    },
    "required": ["error", "detail"],
}
ERROR_DESCRIPTIONS = {
    "400": "Invalid input; detail names each field.",
    "401": "No valid API token or session.",
    "403": "The caller's role (or an API token) may not do this.",
    "404": "Unknown, or not visible to the caller.",
    "409": "Not possible in the current state (e.g. in use, expired).",
}


def document_errors(result, generator, request, public):
    """Post-processing hook: the error answers every operation can give, as {"error","detail"}."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            codes = ["401", "403"]
            if "{" in path:
                codes.append("404")
            if method in ("post", "put", "patch") or operation.get("parameters"):
                codes.append("400")
            if method == "delete":
                codes.append("409")
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(
                    code,
                    {
                        "description": ERROR_DESCRIPTIONS[code],
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    },
                )
    return result
