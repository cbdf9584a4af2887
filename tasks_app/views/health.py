from dataclasses import asdict

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from tasks_app.services.health import readiness


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
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {name: asdict(check) for name, check in checks.items()},
    }
    return JsonResponse(body, status=200 if ready else 503)
