"""Error answers: pages for people, SPEC §8.2's JSON {"error", "detail"} under /api/.

Django calls these for errors that happen outside a view (no URL matched, a body too
large, a CSRF failure, an exception): an API client gets JSON whatever fails. An
exception that is an outage of the database or the broker (lib/outages.py) answers 503
with Retry-After, not 500: the client did nothing wrong and may simply ask again.
"""

import logging
import sys

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.template import loader
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure

from tasks_app.formats.error_body import error_body
from tasks_app.lib.outages import RETRY_AFTER_SECONDS, outage_detail, outage_of

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


def unavailable(request, component: str):
    """503 while `component` is down: JSON under /api/, else a page rendered without the
    request's context (its processors would read the database that is down)."""
    detail = outage_detail(component)
    response: HttpResponse
    if is_api(request):
        response = api_error(503, detail)
    else:
        html = loader.render_to_string("503.html", {"detail": detail})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def server_error(request):
    """Django's handler500, called while the exception is being handled: an outage
    answers 503 (its log line is shortened by lib/outages.OutageLogFilter)."""
    component = outage_of(sys.exc_info()[1])
    if component is not None:
        return unavailable(request, component)
    if is_api(request):
        return api_error(500, "An internal error occurred; it has been logged.")
    return defaults.server_error(request)


def csrf_failure(request, reason=""):
    if is_api(request):
        return api_error(403, f"CSRF check failed: {reason}", "csrf_failed")
    return django_csrf_failure(request, reason, template_name="403_csrf.html")
