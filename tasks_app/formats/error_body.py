"""The body of every error the API answers (SPEC §8.2): {"error": code, "detail": text}.

One table of codes by HTTP status, read by the API's exception handler and by the error
views that answer /api/ requests which never reached a view (no route, a body too large,
a CSRF failure).
"""

ERROR_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}


def error_body(status: int, detail, error: str | None = None) -> dict:
    """The JSON body of an error answer: `error` defaults to the status's code."""
    return {"error": error or ERROR_CODES.get(status, "error"), "detail": detail}
