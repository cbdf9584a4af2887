"""When to refresh, and how long to wait after a failure (SPEC §7). No models, no I/O.

- next_refresh: ECRPORTAL_MIN_REMAINING (plus up to ECRPORTAL_REFRESH_JITTER, to spread
  the load) before the token expires; tokens shorter than that halfway to their expiry.
- backoff: exponential with jitter, from ECRPORTAL_BACKOFF_BASE, capped at
  ECRPORTAL_BACKOFF_CAP; used for failed refreshes and failed notifications alike.
"""

import random
from datetime import datetime, timedelta

from django.conf import settings


def next_refresh(*, expires_at: datetime, at: datetime, seed: int | None = None) -> datetime:
    """When a token that expires at expires_at should be refreshed. The same `seed` gives
    the same jitter: every task served by one credential gets one refresh time."""
    draw = random.Random(seed) if seed is not None else random  # noqa: S311 - not for secrets
    jitter = draw.uniform(0, settings.REFRESH_JITTER)
    due = expires_at - timedelta(seconds=settings.MIN_REMAINING + jitter)
    if due <= at:  # the token is shorter than MIN_REMAINING: halfway, not at once
        due = at + (expires_at - at) / 2
    return due


def backoff(failures: int) -> timedelta:
    """1 failure ~BASE, 2 ~2*BASE, ... at most CAP; each between half and all of that."""
    ceiling = min(settings.BACKOFF_CAP, settings.BACKOFF_BASE * 2 ** (max(failures, 1) - 1))
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))  # noqa: S311
