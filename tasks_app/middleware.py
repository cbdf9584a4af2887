import re
import time

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import redirect
from django.urls import reverse

from tasks_app.formats.error_body import error_body
from tasks_app.lib import metrics
from tasks_app.lib.log_context import log_context, log_context_add, log_fields, request_id_from
from tasks_app.views.accounts import SESSION_MUST_CHANGE_PASSWORD, logout_view, password_change

# Our own pages load nothing from elsewhere and run no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Django's admin sets a few inline style attributes.
ADMIN_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "style-src 'self'", "style-src 'self' 'unsafe-inline'"
)


class PasswordChangeRequiredMiddleware:
    """Sends users who signed in with a one-time password to the password form first."""

    allowed_views = {password_change, logout_view}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if not request.user.is_authenticated:
            return None
        if not request.session.get(SESSION_MUST_CHANGE_PASSWORD):
            return None
        if view_func in self.allowed_views:
            return None
        if request.path.startswith("/api/"):
            # The API's views authenticate themselves (login_not_required), and a session
            # must not use them before its one-time password is replaced.
            if getattr(request.resolver_match, "url_name", None) == "api_schema":
                return None
            detail = f"Change your one-time password first, at {reverse('password_change')}."
            return JsonResponse(error_body(403, detail, "password_change_required"), status=403)
        if not getattr(view_func, "login_required", True):
            return None
        return redirect("password_change")


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            admin = request.path.startswith("/admin/")
            policy = ADMIN_CONTENT_SECURITY_POLICY if admin else CONTENT_SECURITY_POLICY
            response["Content-Security-Policy"] = policy
        return response


# NUL and the other C0 controls but tab, newline and carriage return: no URL or filter of
# the portal uses them, and PostgreSQL refuses NUL in text (a 500 if it got that far).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class RequestGuardMiddleware:
    """Refuses, before any view or database sees them, what no view can accept: control
    characters in the path or the query string (400), a body larger than
    DATA_UPLOAD_MAX_MEMORY_SIZE (413, without reading it). JSON under /api/."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from tasks_app.views.errors import error_answer, too_large

        if _CONTROL.search(request.path_info) or any(
            _CONTROL.search(key) or any(_CONTROL.search(v) for v in values)
            for key, values in request.GET.lists()
        ):
            return error_answer(
                request, 400, "The address holds a control character (such as NUL)."
            )
        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit():
            return error_answer(request, 400, "The Content-Length header is not a number.")
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and int(length) > limit:
            return too_large(request)
        return self.get_response(request)


class ApiMetricsMiddleware:
    """Counts each API request by route and status, with its latency. The route is the
    URL's name (never the path, which holds IDs): "unmatched" when none resolved."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith("/api/"):
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = (match.url_name if match else None) or "unmatched"
        metrics.api_request(route, response.status_code, time.perf_counter() - started)
        return response


class RequestLogContextMiddleware:
    """Each request's log lines carry its request ID (the client's X-Request-ID if it is a
    plain token, else a new one, sent back) and, once known, who acts."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = request_id_from(request.headers.get("X-Request-ID"))
        with log_context(request_id=request_id):
            response = self.get_response(request)
            request.log_fields = log_fields()  # for Django's own line about the answer
        response["X-Request-ID"] = request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Runs once every middleware has seen the request: the session's user is known.
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            log_context_add(actor=user.get_username())
