"""The fleet-wide pace of ecr:GetAuthorizationToken calls (ECRPORTAL_AWS_CALL_RATE per second).

A token bucket kept as one database row, in the form of the generic cell rate algorithm:
the row holds the time from which the next call may start, each call moves it on by one
interval, and up to one second's worth of calls may go at once. Every worker process on
every host shares the row, so the rate holds however many workers run. One short
transaction per call; nothing else is stored.

Why not a library: the well-kept ones (limits, django-ratelimit) keep their counters in
Redis, memcached or a per-process cache, not in the database, and the portal's one-machine
set-up has no Redis.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils.timezone import now

from tasks_app.models import CallRate

ECR_TOKENS = "ecr:GetAuthorizationToken"


def call_slot_take(*, at: datetime | None = None, name: str = ECR_TOKENS) -> float:
    """Take the next slot for one AWS call; returns the seconds to wait before making it
    (0 when the call may go now). Callers that cannot wait (Run now) make the call at once:
    their slot still counts, so scheduled work slows down to make room."""
    rate = settings.AWS_CALL_RATE
    if not rate:
        return 0.0
    at = at or now()
    interval = timedelta(seconds=1 / rate)
    burst = max(1.0, rate)  # calls that may go at once: one second's worth
    with transaction.atomic():
        row, _ = CallRate.objects.select_for_update().get_or_create(
            name=name, defaults={"next_at": at}
        )
        start = max(row.next_at, at)
        row.next_at = start + interval
        row.save(update_fields=["next_at"])
    allowed = start - interval * (burst - 1)
    return max(0.0, (allowed - at).total_seconds())
