"""Which tasks a refresh tick takes (SPEC §7): whole credential groups, leased to one
worker message each.

- A group is never split. A claim holds every free task of its credential group
  (services/inputs.py, credential_group): the due ones and, since the one AWS call serves
  them all, the others too, so that their refresh times are one again after a manual run,
  a new task or a failure had set them apart.
- The oldest due group goes first. A tick claims at most two ticks' worth of calls at
  ECRPORTAL_AWS_CALL_RATE, less the claims still queued, so queued work never outlives
  its lease; with no rate set, groups until CLAIM_BATCH tasks.
- Claimers take turns (a PostgreSQL advisory lock; SQLite's transactions are IMMEDIATE),
  so a task is never in two claims. A lease left by a killed worker runs out after
  ECRPORTAL_REFRESH_LEASE seconds and the task is claimed again, under a new claim ID:
  the late worker, if any, then finds nothing to do.
- The worker message carries the claim ID only: a few bytes for any group, no secret.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.utils.timezone import now

from tasks_app.crypto import EncryptionError
from tasks_app.models import TaskConfig, TaskRun
from tasks_app.services.inputs import RunError, credential_group, task_resolve
from tasks_app.services.results import run_fail

CLAIM_BATCH = 50_000  # tasks per tick, unless a single group is larger
CLAIM_LOCK = 0x45435250  # the advisory lock claimers take turns with ("ECRP")
PART = 2000  # task IDs per UPDATE statement
SCHEDULE = TaskRun.Trigger.SCHEDULE
KEY_FIELDS = (
    "id",
    "credentials_source",
    "connector_id",
    "role_arn",
    "region",
    "connector_variable",
    "region_variable",
)


@dataclass(frozen=True)
class Claim:
    id: uuid.UUID
    group: str
    task_ids: list[uuid.UUID]


def _free(at: datetime) -> QuerySet[TaskConfig]:
    return TaskConfig.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=at), enabled=True
    )


def _static_group(row: tuple) -> str | None:
    """The group of a task from its own columns; None when a variable decides it."""
    _, source, connector_id, role_arn, region, connector_variable, region_variable = row
    if connector_variable or region_variable:
        return None
    if source == TaskConfig.Source.CONNECTOR:
        if connector_id is None:
            return None  # cannot run; resolving it says why
        return credential_group(connector_id=connector_id, host_role_arn="", region=region)
    return credential_group(connector_id=None, host_role_arn=role_arn, region=region)


def _resolve(task_ids: list) -> tuple[dict, list]:
    """Groups of the tasks that take their connector or region from a variable, and the
    tasks that cannot run as configured, with the reason."""
    groups, failed = {}, []
    memo: dict = {}
    tasks = TaskConfig.objects.filter(id__in=task_ids).select_related(
        "job__plan__team", "connector__team"
    )
    for task in tasks:
        try:
            groups[task.id] = task_resolve(task=task, trigger=SCHEDULE, memo=memo).group
        except (RunError, EncryptionError) as e:
            failed.append((task, e))
    return groups, failed


def _group_budget(at: datetime) -> int | None:
    """How many more groups may be claimed now; None: no rate, no limit."""
    if not settings.AWS_CALL_RATE:
        return None
    allowed = max(1, int(2 * settings.AWS_CALL_RATE * settings.REFRESH_TICK))
    queued = (
        TaskConfig.objects.filter(claim__isnull=False, lease_until__gt=at)
        .values("claim")
        .distinct()
        .count()
    )
    return max(0, allowed - queued)


def _choose(groups: dict[str, list], budget: int | None) -> dict[str, list]:
    chosen: dict[str, list] = {}
    tasks = 0
    for group, ids in groups.items():
        if chosen and (tasks >= CLAIM_BATCH or (budget is not None and len(chosen) >= budget)):
            break
        chosen[group] = ids
        tasks += len(ids)
    return chosen


def _complete(chosen: dict[str, list], at: datetime) -> None:
    """Add the free tasks of the chosen groups that are not due yet."""
    connectors, roles = set(), set()
    for rows in chosen.values():
        for _, source, connector_id, role_arn, *_ in rows:
            if source == TaskConfig.Source.CONNECTOR:
                connectors.add(connector_id)
            else:
                roles.add(role_arn)
    members = (
        _free(at)
        .filter(connector_variable="", region_variable="")
        .filter(
            Q(credentials_source=TaskConfig.Source.CONNECTOR, connector_id__in=connectors)
            | Q(credentials_source=TaskConfig.Source.HOST, role_arn__in=roles)
        )
        .values_list(*KEY_FIELDS)
    )
    seen = {row[0] for rows in chosen.values() for row in rows}
    for row in members.iterator(chunk_size=PART):
        group = _static_group(row)
        if group in chosen and row[0] not in seen:
            chosen[group].append(row)


def _serialize() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK])


def refresh_claim(*, at: datetime | None = None, ids=None) -> list[Claim]:
    """Lease whole credential groups of due tasks (of `ids` only, if given), the oldest due
    first; returns one claim per group. Tasks whose variables cannot be resolved are not
    claimed: their run fails here, with back-off."""
    at = at or now()
    lease = at + timedelta(seconds=settings.REFRESH_LEASE)
    with transaction.atomic():
        _serialize()
        budget = _group_budget(at)
        if budget == 0:
            return []
        due = _free(at).filter(refresh_due_at__lte=at)
        if ids is not None:
            due = due.filter(id__in=ids)
        rows = list(due.order_by("refresh_due_at").values_list(*KEY_FIELDS))
        resolved, failed = _resolve([row[0] for row in rows if _static_group(row) is None])
        groups: dict[str, list] = {}
        for row in rows:
            group = _static_group(row) or resolved.get(row[0])
            if group is not None:
                groups.setdefault(group, []).append(row)
        chosen = _choose(groups, budget)
        _complete(chosen, at)
        claims = [
            Claim(id=uuid.uuid4(), group=group, task_ids=[row[0] for row in members])
            for group, members in chosen.items()
        ]
        for claim in claims:
            for start in range(0, len(claim.task_ids), PART):
                TaskConfig.objects.filter(id__in=claim.task_ids[start : start + PART]).update(
                    lease_until=lease, claim=claim.id
                )
        for task, error in failed:
            run_fail(run=TaskRun.objects.create(task=task, trigger=SCHEDULE), error=error)
    return claims


def claim_release(*, claim_id: uuid.UUID) -> int:
    """Give a claim's tasks back at once (its message could not be queued)."""
    return TaskConfig.objects.filter(claim=claim_id).update(lease_until=None, claim=None)


def claimed_task_ids(*, claim_id: uuid.UUID) -> list[uuid.UUID]:
    """The tasks a claim still holds: none once its lease ran out and another claim took
    them."""
    return list(
        TaskConfig.objects.filter(claim=claim_id, enabled=True)
        .order_by("id")
        .values_list("id", flat=True)
    )
