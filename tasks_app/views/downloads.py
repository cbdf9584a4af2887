"""Files the portal hands out: the Docker credential helper (issue 16). Public: they hold
no secret, and a build host fetches them before it has any token."""

from pathlib import Path

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse
from django.views.decorators.http import require_GET

FOLDER = Path(__file__).resolve().parent.parent / "downloads"
FILES = {"docker-credential-ecrportal": "text/x-python; charset=utf-8"}


@login_not_required
@require_GET
def download(request, name):
    if name not in FILES:
        raise Http404("No such download.")
    response = HttpResponse((FOLDER / name).read_bytes(), content_type=FILES[name])
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
