from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_ipv46_address


def client_address(request) -> str | None:
    """The client's IP address, trusting X-Forwarded-For only as far as configured.

    With ECRPORTAL_TRUSTED_PROXY_COUNT=N, the N-th address from the right end of
    X-Forwarded-For is the one our outermost trusted proxy saw; anything further
    left was written by the client and could be forged.
    """
    address = request.META.get("REMOTE_ADDR")
    count = settings.TRUSTED_PROXY_COUNT
    if count:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [a for a in forwarded if a]
        if len(forwarded) >= count:
            address = forwarded[-count]
    return address if address is not None and _is_address(address) else None


@lru_cache(maxsize=1024)
def _is_address(address: str) -> bool:
    """Parsing an address costs more than the rest of this module's work: the CI runners
    a portal serves come from a few addresses, so the answers are kept. (A pure function's
    memo, which is never stale: not one of tasks_app/lib/caches.py's caches.)"""
    try:
        validate_ipv46_address(address)
    except ValidationError:
        return False
    return True
