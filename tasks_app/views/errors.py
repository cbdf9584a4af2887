"""Error answers: pages for people, SPEC §8.2's JSON {"error", "detail"} under /api/.

Django calls these for errors that happen outside a view (no URL matched, a body too
large, a CSRF failure, an exception): an API client gets JSON whatever fails.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.shortcuts import render
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure

from tasks_app.formats.error_body import error_body

log = logging.getLogger(__name__)

API_PREFIX = "/api/"


def is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def api_error(status: int, detail: str, error: str | None = None) -> JsonResponse:
    return JsonResponse(error_body(status, detail, error), status=status)


def error_answer(request, status: int, detail: str, error: str | None = None):
    """The error as the caller reads it: JSON under /api/, else the error page."""
    if is_api(request):
        return api_error(status, detail, error)
    return render(request, "400.html", {"detail": detail, "status": status}, status=status)


def too_large(request):
    from django.conf import settings

    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return error_answer(
        request, 413, f"The request body is larger than the {limit} bytes the portal accepts."
    )


def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        return too_large(request)
    if is_api(request):
        return api_error(400, "The request could not be understood.")
    return defaults.bad_request(request, exception)


def permission_denied(request, exception=None):
    if is_api(request):
        return api_error(403, str(exception or "") or "You may not do this.")
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception=None):
    if is_api(request):
        return api_error(404, "There is no such resource here.")
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api(request):
        return api_error(500, "An internal error occurred; it has been logged.")
    return defaults.server_error(request)


def csrf_failure(request, reason=""):
    if is_api(request):
        return api_error(403, f"CSRF check failed: {reason}", "csrf_failed")
    return django_csrf_failure(request, reason, template_name="403_csrf.html")
