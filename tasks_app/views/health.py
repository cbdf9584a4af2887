import logging
from dataclasses import asdict

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from tasks_app.lib.metrics import CONTENT_TYPE, refusal_headers, scrape_refusal
from tasks_app.policy.access import may_read_worker_names
from tasks_app.services.health import readiness
from tasks_app.services.metrics import metrics_text

logger = logging.getLogger(__name__)


@login_not_required
@never_cache
def healthz(request):
    """The process is up and serving requests. Touches nothing else."""
    return HttpResponse("OK\n", content_type="text/plain")


@login_not_required
@never_cache
def readyz(request):
    """Ready to do work: the database answers and a worker consumes from the broker."""
    checks = readiness(timeout=settings.READYZ_TIMEOUT_SECONDS)
    ready = all(check.ok for check in checks.values())
    names = may_read_worker_names(request.user)
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {
            name: {k: v for k, v in asdict(check).items() if names or k != "workers"}
            for name, check in checks.items()
        },
    }
    response = JsonResponse(body, status=200 if ready else 503)
    if not ready:
        # An expected state, not a server error: one warning, not django.request's ERROR.
        response._has_been_logged = True  # type: ignore[attr-defined]
        failed = "; ".join(f"{n}: {c.detail}" for n, c in checks.items() if not c.ok)
        logger.warning("Not ready: %s", failed)
    return response


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


@login_not_required
@csrf_exempt  # a scraper has no session: another method gets the 405 below, not CSRF's page
@never_cache
def metrics(request):
    """Prometheus' text format, for a scraper that sends ECRPORTAL_METRICS_TOKEN as a
    bearer token; off (404, saying so) while that setting is unset."""
    refusal = scrape_refusal(
        method=request.method, authorization=request.headers.get("Authorization", "")
    )
    if refusal is not None:
        status, text = refusal
        response = _plain(text, status)
        for header, value in refusal_headers(status):
            response[header] = value
        return response
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE)
