"""Recording task status changes (SPEC §7: ok → failing → expired → ok).

A task's `recorded_status` is compared with its live status after every run
and at every scheduler tick (a token runs out without any run). Changes are
written with the task rows locked (PostgreSQL) and a compare-and-set update,
so two processes that see the same change record it once. Callers queue the
notifications of the changes they get back (services/notifications.py).
"""

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.utils.timezone import now

from tasks_app.models import Status, TaskConfig, TaskStatusChange, task_status

# Statuses whose token can run out while nothing runs.
_MAY_EXPIRE = (Status.OK, Status.FAILING)
SWEEP_BATCH = 1000


@dataclass(frozen=True)
class TaskState:
    """What a task's status is computed from, and the status last recorded."""

    task_id: uuid.UUID
    expires_at: datetime | None
    last_run_ok: bool | None
    last_error: str
    recorded: str


STATE_COLUMNS = ("id", "credential__expires_at", "last_run_ok", "last_error", "recorded_status")


def statuses_record(*, task_ids, runs=None, at=None) -> list[TaskStatusChange]:
    """Record the changes of these tasks' statuses since they were last recorded, reading
    them with their rows locked (the expiry sweep: nothing else holds them).

    Call it inside a transaction: the changes commit with the caller's work.
    """
    rows = (
        TaskConfig.objects.select_for_update(of=("self",))
        .filter(pk__in=task_ids, enabled=True)
        .values_list(*STATE_COLUMNS)
    )
    return status_changes_record(states=[TaskState(*row) for row in rows], runs=runs, at=at)


def status_changes_record(
    *, states: list[TaskState], runs=None, at=None
) -> list[TaskStatusChange]:
    """Record the changes of these states (of enabled tasks whose rows the caller has
    locked, or written in this transaction), and return them: the caller queues their
    notifications (notifications_queue)."""
    at, runs = at or now(), runs or {}
    changes, moves = [], defaultdict(list)
    for state in states:
        status = task_status(
            enabled=True, expires_at=state.expires_at, last_run_ok=state.last_run_ok, at=at
        )
        if status == state.recorded:
            continue
        moves[(state.recorded, status)].append(state.task_id)
        changes.append(
            TaskStatusChange(
                task_id=state.task_id,
                previous=state.recorded,
                status=status,
                at=at,
                run=runs.get(state.task_id),
                error=state.last_error if status != Status.OK else "",
                expires_at=state.expires_at,
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
            recorded_status__in=_MAY_EXPIRE,
            credential__expires_at__lte=at or now(),
            enabled=True,
        ).values_list("id", flat=True)[:limit]
    )
