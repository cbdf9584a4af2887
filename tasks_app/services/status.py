"""Recording task status changes (SPEC §7: ok → failing → expired → ok).

A task's `recorded_status` is compared with its live status after every run
and at every scheduler tick (a token runs out without any run). A change is
written with a compare-and-set update, so two processes that see the same
change record it once; each change may notify (services/notifications.py).
"""

from django.db import transaction
from django.utils.timezone import now

from tasks_app.models import Status, TaskConfig, TaskStatusChange, task_status

# Statuses whose token can run out while nothing runs.
_MAY_EXPIRE = (Status.OK, Status.FAILING)
SWEEP_BATCH = 1000


def status_record(*, task_id, run=None, at=None) -> TaskStatusChange | None:
    """Record the task's status if it changed since it was last recorded."""
    from tasks_app.services.notifications import notifications_queue

    at = at or now()
    for _ in range(3):  # another process may record a change in between: look again
        row = (
            TaskConfig.objects.filter(pk=task_id)
            .values("enabled", "expires_at", "last_run_ok", "last_error", "recorded_status")
            .first()
        )
        if row is None or not row["enabled"]:
            return None
        status = task_status(
            enabled=True, expires_at=row["expires_at"], last_run_ok=row["last_run_ok"], at=at
        )
        previous = row["recorded_status"]
        if status == previous:
            return None
        with transaction.atomic():
            if not TaskConfig.objects.filter(pk=task_id, recorded_status=previous).update(
                recorded_status=status
            ):
                continue
            change = TaskStatusChange.objects.create(
                task_id=task_id,
                previous=previous,
                status=status,
                at=at,
                run=run,
                error=row["last_error"] if status != Status.OK else "",
                expires_at=row["expires_at"],
            )
            notifications_queue(change=change)
            return change
    return None


def status_sweep(*, at=None, limit: int = SWEEP_BATCH) -> int:
    """Record the tasks whose token ran out since their status was recorded."""
    at = at or now()
    ids = list(
        TaskConfig.objects.filter(
            recorded_status__in=_MAY_EXPIRE, expires_at__lte=at, enabled=True
        ).values_list("id", flat=True)[:limit]
    )
    return sum(status_record(task_id=task_id, at=at) is not None for task_id in ids)
