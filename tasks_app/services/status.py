"""Recording task status changes (SPEC §7: ok → failing → expired → ok).

A task's `recorded_status` is compared with its live status after every run
and at every scheduler tick (a token runs out without any run). Changes are
written with the task rows locked (PostgreSQL) and a compare-and-set update,
so two processes that see the same change record it once. Callers queue the
notifications of the changes they get back (services/notifications.py).
"""

from collections import defaultdict

from django.utils.timezone import now

from tasks_app.models import Status, TaskConfig, TaskStatusChange, task_status

# Statuses whose token can run out while nothing runs.
_MAY_EXPIRE = (Status.OK, Status.FAILING)
SWEEP_BATCH = 1000


def statuses_record(*, task_ids, runs=None, at=None) -> list[TaskStatusChange]:
    """Record the changes of these tasks' statuses since they were last recorded, and
    return them (the caller queues their notifications: notifications_queue).

    Call it inside a transaction: the changes commit with the caller's work.
    """
    at, runs = at or now(), runs or {}
    rows = (
        TaskConfig.objects.select_for_update()
        .filter(pk__in=task_ids, enabled=True)
        .values_list("id", "expires_at", "last_run_ok", "last_error", "recorded_status")
    )
    changes, moves = [], defaultdict(list)
    for task_id, expires_at, last_run_ok, last_error, previous in rows:
        status = task_status(enabled=True, expires_at=expires_at, last_run_ok=last_run_ok, at=at)
        if status == previous:
            continue
        moves[(previous, status)].append(task_id)
        changes.append(
            TaskStatusChange(
                task_id=task_id,
                previous=previous,
                status=status,
                at=at,
                run=runs.get(task_id),
                error=last_error if status != Status.OK else "",
                expires_at=expires_at,
            )
        )
    if not changes:
        return []
    for (previous, status), ids in moves.items():
        # The rows are locked, so this matches them all; elsewhere (SQLite) the
        # transaction's write lock keeps other writers out.
        TaskConfig.objects.filter(pk__in=ids, recorded_status=previous).update(
            recorded_status=status
        )
    TaskStatusChange.objects.bulk_create(changes)
    return changes


def expired_task_ids(*, at=None, limit: int = SWEEP_BATCH) -> list:
    """Tasks whose token ran out since their status was recorded (nothing ran)."""
    return list(
        TaskConfig.objects.filter(
            recorded_status__in=_MAY_EXPIRE, expires_at__lte=at or now(), enabled=True
        ).values_list("id", flat=True)[:limit]
    )
