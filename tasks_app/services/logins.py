"""Sign-in bookkeeping: throttling of failed attempts, and their audit trail.

The throttle is two rate limits (services/pacing.py), one per account (its normalised
name) and one per client address: each allows ECRPORTAL_LOGIN_FAILURES_PER_ACCOUNT (or
_PER_ADDRESS) failures at once, then one more each ECRPORTAL_LOGIN_THROTTLE_SECONDS divided
by that number: as many failures per window as the settings say, however they are spread.
A failed sign-in takes a slot of both; a refused one (throttled) takes none. Every attempt
is an audit event; the events are the trail, the limits are the counters.
"""

import hashlib
import logging
import math
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils.crypto import salted_hmac

from tasks_app.identity.actor import Actor
from tasks_app.lib import metrics
from tasks_app.services.audit import audit_record
from tasks_app.services.pacing import Limit, slot_take, slot_wait

LOGIN_FAILED = "login.failed"


def _normalise(username: str) -> str:
    return username.strip().lower()[:150]


def _limit(kind: str, subject: str, failures: int) -> Limit:
    # A name or address may be longer than a limit's name allows: its digest is not (and a
    # name spelled like a digest cannot stand in for another).
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return Limit(
        name=f"login:{kind}:{digest}",
        interval=timedelta(seconds=settings.LOGIN_THROTTLE_SECONDS / failures),
        burst=failures,
    )


def _limits(*, actor: Actor, username: str) -> list[Limit]:
    limits = [_limit("account", _normalise(username), settings.LOGIN_FAILURES_PER_ACCOUNT)]
    if actor.address:
        limits.append(_limit("address", actor.address, settings.LOGIN_FAILURES_PER_ADDRESS))
    return limits


def login_retry_after(*, actor: Actor, username: str) -> int | None:
    """Seconds until this account or address may try again, or None if not throttled."""
    wait = max(slot_wait(limit=limit) for limit in _limits(actor=actor, username=username))
    return max(1, math.ceil(wait)) if wait > 0 else None


def login_failed(*, actor: Actor, username: str, throttled: bool = False) -> None:
    metrics.authentication_failed("password")
    action = "login.throttled" if throttled else LOGIN_FAILED
    summary = (
        "Sign-in refused: too many failed attempts"
        if throttled
        else "Sign-in failed: wrong username or password"
    )
    if not throttled:
        for limit in _limits(actor=actor, username=username):
            slot_take(limit=limit)
    audit_record(
        action=action,
        summary=summary,
        actor=Actor(label=_attempted_account(username), address=actor.address),
        log_level=logging.WARNING,
    )


def _attempted_account(username: str) -> str:
    """Who a failed sign-in was for, as the audit trail and the log name it: an account's
    name; for a name no account has (often a password typed in the wrong field), a keyed
    digest instead, the same for the same name, so that repeated guesses still show."""
    name = _normalise(username)
    if get_user_model().objects.filter(username__iexact=name).exists():
        return name
    digest = salted_hmac("login.failed", name, algorithm="sha256").hexdigest()[:12]
    return f"unknown account #{digest}"


def login_succeeded(*, actor: Actor) -> None:
    audit_record(action="login.succeeded", summary="Signed in", actor=actor)


def password_sign_in_allowed(username: str) -> bool:
    """With local passwords off (ECRPORTAL_LOCAL_PASSWORDS=0), only the break-glass
    accounts sign in with a password (and only while they are portal administrators)."""
    if settings.LOCAL_PASSWORDS:
        return True
    return username.lower() in {name.lower() for name in settings.BREAK_GLASS_USERS}
