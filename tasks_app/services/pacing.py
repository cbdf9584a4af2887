"""Rate limits shared by every process: the fleet-wide pace of AWS calls
(ECRPORTAL_AWS_CALL_RATE per second) and the throttle of failed sign-ins (per account and
per address, services/logins.py).

Each named limit is a token bucket kept as one database row, in the form of the generic
cell rate algorithm: the row holds the time from which the next slot starts, each slot
taken moves it on by one interval, and up to `burst` slots may be taken at once. Every
web and worker process on every host shares the row, so the limit holds however many run;
a slot taken while others take theirs is counted all the same (the row is locked while it
moves). One short transaction per slot; a limit that has filled up again is the same as no
row, so housekeeping deletes those.

Why not a library: the well-kept ones (limits, django-ratelimit) keep their counters in
Redis, memcached or a per-process cache, not in the database, and the portal's one-machine
set-up has no Redis.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils.timezone import now

from tasks_app.models import CallRate

ECR_TOKENS = "ecr:GetAuthorizationToken"
NAME_MAX = CallRate._meta.get_field("name").max_length


@dataclass(frozen=True)
class Limit:
    """`burst` slots at once, then one more each `interval`."""

    name: str  # the CallRate row's, at most NAME_MAX characters
    interval: timedelta
    burst: float

    def __post_init__(self):
        if not self.name or len(self.name) > (NAME_MAX or 0):
            raise ValueError(f"a limit's name has 1 to {NAME_MAX} characters: {self.name!r}")

    @property
    def tolerance(self) -> timedelta:
        """How far ahead of now the row may be while a slot is still free."""
        return self.interval * (self.burst - 1)


def slot_take(*, limit: Limit, at: datetime | None = None) -> float:
    """Take the next slot of the limit; returns the seconds until it is free (0 when it is
    now). The slot is taken either way: a caller that does not wait still counts."""
    at = at or now()
    with transaction.atomic():
        row, _ = CallRate.objects.select_for_update().get_or_create(
            name=limit.name, defaults={"next_at": at}
        )
        start = max(row.next_at, at)
        row.next_at = start + limit.interval
        row.save(update_fields=["next_at"])
    return max(0.0, (start - limit.tolerance - at).total_seconds())


def slot_wait(*, limit: Limit, at: datetime | None = None) -> float:
    """The seconds until a slot of the limit is free (0 when one is now); takes none."""
    at = at or now()
    next_at = CallRate.objects.filter(name=limit.name).values_list("next_at", flat=True).first()
    if next_at is None:
        return 0.0
    return max(0.0, (next_at - limit.tolerance - at).total_seconds())


def rate_limits_purge(*, at: datetime | None = None) -> int:
    """Delete the rows of limits that have filled up again (no row means the same)."""
    deleted, _ = CallRate.objects.filter(next_at__lte=at or now()).delete()
    return deleted


def call_slot_take(*, at: datetime | None = None, name: str = ECR_TOKENS) -> float:
    """Take the next slot for one AWS call; returns the seconds to wait before making it
    (0 when the call may go now). Callers that cannot wait (Run now) make the call at once:
    their slot still counts, so scheduled work slows down to make room."""
    rate = settings.AWS_CALL_RATE
    if not rate:
        return 0.0
    # Calls that may go at once: one second's worth.
    limit = Limit(name=name, interval=timedelta(seconds=1 / rate), burst=max(1.0, rate))
    return slot_take(limit=limit, at=at)


def calls_queued_at_most() -> int | None:
    """How many AWS calls (refresh groups, one call each) may wait in the queue at once:
    two ticks' worth at the fleet's rate, so that the workers never run dry between ticks
    and a backlog stays in the database, not the broker. None: no rate, no limit."""
    if not settings.AWS_CALL_RATE:
        return None
    return max(1, int(2 * settings.AWS_CALL_RATE * settings.REFRESH_TICK))
