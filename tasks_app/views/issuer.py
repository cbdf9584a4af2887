"""The portal's own OIDC issuer documents (issue 17), which AWS reads to verify the ID
tokens of web-identity connectors. Public by nature: AWS fetches them without signing in;
they hold public keys only."""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from tasks_app.services.issuer import KEY_CACHE_SECONDS, discovery_document, jwks

# Verifiers may keep the documents no longer than the portal's processes keep their keys,
# so a rotation's new key is seen everywhere before it signs (its overlap is longer).
_CACHE = f"public, max-age={KEY_CACHE_SECONDS}"


def _public(document: dict) -> JsonResponse:
    response = JsonResponse(document)
    response["Cache-Control"] = _CACHE
    return response


@login_not_required
@require_GET
def openid_configuration(request):
    return _public(discovery_document())


@login_not_required
@require_GET
def jwks_document(request):
    return _public(jwks())
