"""Sign-in bookkeeping: throttling of failed attempts, and their audit trail."""

import logging
import math
from datetime import timedelta

from django.conf import settings
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.models import AuditEvent
from tasks_app.services.audit import audit_record

LOGIN_FAILED = "login.failed"


def _normalise(username: str) -> str:
    return username.strip().lower()[:150]


def login_retry_after(*, actor: Actor, username: str) -> int | None:
    """Seconds until this account or address may try again, or None if not throttled."""
    window_start = now() - timedelta(seconds=settings.LOGIN_THROTTLE_SECONDS)
    recent = AuditEvent.objects.filter(action=LOGIN_FAILED, created__gte=window_start)
    limits = [
        (recent.filter(actor_name=_normalise(username)), settings.LOGIN_FAILURES_PER_ACCOUNT)
    ]
    if actor.address:
        limits.append((recent.filter(address=actor.address), settings.LOGIN_FAILURES_PER_ADDRESS))

    waits = []
    for failures, limit in limits:
        # Only the newest `limit` failures matter: the window reopens when the
        # oldest of them leaves it.
        newest = list(failures.order_by("-created").values_list("created", flat=True)[:limit])
        if len(newest) >= limit:
            reopens = newest[-1] + timedelta(seconds=settings.LOGIN_THROTTLE_SECONDS)
            waits.append(max(1, math.ceil((reopens - now()).total_seconds())))
    return max(waits) if waits else None


def login_failed(*, actor: Actor, username: str, throttled: bool = False) -> None:
    action = "login.throttled" if throttled else LOGIN_FAILED
    summary = (
        "Sign-in refused: too many failed attempts"
        if throttled
        else "Sign-in failed: wrong username or password"
    )
    audit_record(
        action=action,
        summary=summary,
        actor=Actor(label=_normalise(username), address=actor.address),
        log_level=logging.WARNING,
    )


def login_succeeded(*, actor: Actor) -> None:
    audit_record(action="login.succeeded", summary="Signed in", actor=actor)


def password_sign_in_allowed(username: str) -> bool:
    """With local passwords off (ECRPORTAL_LOCAL_PASSWORDS=0), only the break-glass
    accounts sign in with a password (and only while they are portal administrators)."""
    if settings.LOCAL_PASSWORDS:
        return True
    return username.lower() in {name.lower() for name in settings.BREAK_GLASS_USERS}
