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
    try:
        validate_ipv46_address(address)
    except ValidationError:
        return None
    return address
