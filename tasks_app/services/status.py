"""Recording task status changes (SPEC §7: ok → failing → expired → ok).

A task's `recorded_status` is compared with its live status after every run
and at every scheduler tick (a token runs out without any run). Changes are
written with the task rows locked (PostgreSQL) and a compare-and-set update,
so two processes that see the same change record it once; each change may
notify (services/notifications.py).
"""

from collections import defaultdict

from django.db import transaction
from django.utils.timezone import now

from tasks_app.models import Status, TaskConfig, TaskStatusChange, task_status

# Statuses whose token can run out while nothing runs.
_MAY_EXPIRE = (Status.OK, Status.FAILING)
SWEEP_BATCH = 1000


def statuses_record(*, task_ids, runs=None, at=None) -> list[TaskStatusChange]:
    """Record the changes of these tasks' statuses since they were last recorded.

    Call it inside a transaction: the changes, and their notifications, commit with it.
    """
    from tasks_app.services.notifications import notifications_queue

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
    news = [change for change in changes if change.kind]
    if news:
        tasks = TaskConfig.objects.select_related("job__plan__team").in_bulk(
            [change.task_id for change in news]
        )
        for change in news:
            change.task = tasks[change.task_id]
            notifications_queue(change=change)
    return changes


def status_record(*, task_id, run=None, at=None) -> TaskStatusChange | None:
    """Record one task's status if it changed since it was last recorded."""
    with transaction.atomic():
        changes = statuses_record(task_ids=[task_id], runs={task_id: run} if run else None, at=at)
    return changes[0] if changes else None


def status_sweep(*, at=None, limit: int = SWEEP_BATCH) -> int:
    """Record the tasks whose token ran out since their status was recorded."""
    at = at or now()
    ids = list(
        TaskConfig.objects.filter(
            recorded_status__in=_MAY_EXPIRE, expires_at__lte=at, enabled=True
        ).values_list("id", flat=True)[:limit]
    )
    if not ids:
        return 0
    with transaction.atomic():
        return len(statuses_record(task_ids=ids, at=at))
