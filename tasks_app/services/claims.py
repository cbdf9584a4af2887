"""Which tasks a refresh tick takes (SPEC §7): whole credential groups, leased to one
worker message each.

- A group is never split. A claim holds every free task of its credential group
  (services/run_inputs.py, credential_group): the due ones and, since the one AWS call serves
  them all, the others too, so that their refresh times are one again after a manual run,
  a new task or a failure had set them apart.
- Groups are counted in the database, and claimed with one UPDATE each: a tick's memory
  grows with the groups, not with the tasks. Tasks that take their connector or region
  from a variable are resolved one by one (they are few) and join the group they name.
- The oldest due group goes first. A tick claims at most two ticks' worth of calls at
  ECRPORTAL_AWS_CALL_RATE, less the claims still queued, so queued work never outlives
  its lease; with no rate set, groups until CLAIM_BATCH tasks.
- Claimers take turns (a PostgreSQL advisory lock; SQLite's transactions are IMMEDIATE),
  so a task is never in two claims. A lease left by a killed worker runs out after
  ECRPORTAL_REFRESH_LEASE seconds and the task is claimed again, under a new claim ID:
  the late worker, if any, then finds nothing to do.
- A refresh that fails on an outage (the database or the broker down) is retried with
  back-off, each retry renewing the lease first (claim_renew); when it can retry no more,
  it gives the claim back (claim_release) so the next tick takes the group.
- The worker message carries the claim ID only: a few bytes for any group, no secret.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Min, Q, QuerySet
from django.utils.timezone import now

from tasks_app.lib.crypto import EncryptionError
from tasks_app.models import TaskConfig, TaskRun
from tasks_app.services.pacing import calls_queued_at_most
from tasks_app.services.run_inputs import RunError, credential_group, task_group
from tasks_app.services.run_results import run_fail

CLAIM_BATCH = 50_000  # tasks per tick, unless a single group is larger
CLAIM_LOCK = 0x45435250  # the advisory lock claimers take turns with ("ECRP")
SCHEDULE = TaskRun.Trigger.SCHEDULE
STATIC = ("credentials_source", "connector_id", "role_arn", "region", "access", "registry")


@dataclass(frozen=True)
class Claim:
    id: uuid.UUID
    group: str
    size: int  # tasks it holds


@dataclass
class _Group:
    """A credential group with due tasks: how to find its tasks, when the first was due."""

    key: str
    first_due: datetime
    due: int
    static: dict | None = None  # the columns its tasks without variables share
    resolved: list = field(default_factory=list)  # tasks that resolve to it by variables


def _free(at: datetime) -> QuerySet[TaskConfig]:
    return TaskConfig.objects.filter(
        Q(lease_until__isnull=True) | Q(lease_until__lt=at), enabled=True
    )


# The tasks whose group their own columns decide (no variable, and a connector if they
# need one); the others are resolved first.
STATIC_TASKS = Q(connector_variable="", region_variable="") & ~Q(
    credentials_source=TaskConfig.Source.CONNECTOR, connector=None
)


def _static_group(source, connector_id, role_arn, region, access, registry) -> tuple[str, dict]:
    """The group of tasks that their own columns place in it: its key, and the columns
    that find its tasks (the role counts for the host's credentials only)."""
    shared = {
        "credentials_source": source,
        "region": region,
        "access": access,
        "registry": registry,
    }
    if source == TaskConfig.Source.CONNECTOR:
        key = credential_group(
            connector_id=connector_id,
            host_role_arn="",
            region=region,
            access=access,
            registry=registry,
        )
        return key, {**shared, "connector_id": connector_id}
    key = credential_group(
        connector_id=None, host_role_arn=role_arn, region=region, access=access, registry=registry
    )
    return key, {**shared, "role_arn": role_arn}


def _due_groups(due: QuerySet[TaskConfig]) -> tuple[dict[str, _Group], list]:
    """The groups of the due tasks, counted in the database (memory stays O(groups)), and
    the tasks that cannot run as configured, with the reason."""
    groups: dict[str, _Group] = {}
    counted = (
        due.filter(STATIC_TASKS)
        .values(*STATIC)
        .annotate(first_due=Min("refresh_due_at"), due=Count("id"))
        .order_by()
    )
    for row in counted:
        key, static = _static_group(*(row[name] for name in STATIC))
        group = groups.setdefault(key, _Group(key, row["first_due"], 0))
        group.static = static
        group.first_due = min(group.first_due, row["first_due"])
        group.due += row["due"]
    variable = due.filter(~STATIC_TASKS)
    failed = []
    memo: dict = {}
    for task in variable.select_related("job__plan__team", "connector__team"):
        try:
            key = task_group(task=task, memo=memo)
        except (RunError, EncryptionError) as e:
            failed.append((task, e))
            continue
        due_at = task.refresh_due_at
        assert due_at is not None  # `due` holds only tasks with a due time
        group = groups.setdefault(key, _Group(key, due_at, 0))
        group.first_due = min(group.first_due, due_at)
        group.due += 1
        group.resolved.append(task.pk)
    return groups, failed


def _group_budget(at: datetime) -> int | None:
    """How many more groups may be claimed now; None: no rate, no limit."""
    allowed = calls_queued_at_most()
    if allowed is None:
        return None
    queued = (
        TaskConfig.objects.filter(claim__isnull=False, lease_until__gt=at)
        .values("claim")
        .distinct()
        .count()
    )
    return max(0, allowed - queued)


def _choose(groups: dict[str, _Group], budget: int | None) -> list[_Group]:
    chosen: list[_Group] = []
    tasks = 0
    for group in sorted(groups.values(), key=lambda g: g.first_due):
        if chosen and (tasks >= CLAIM_BATCH or (budget is not None and len(chosen) >= budget)):
            break
        chosen.append(group)
        tasks += group.due
    return chosen


def _serialize() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CLAIM_LOCK])


def _anything_due(at: datetime) -> bool:
    """Whether an enabled task is due, read from the start of the refresh_due_at index
    whatever the planner's statistics say (ordered by the indexed column, LIMIT 1).

    Right after a cycle moved every due time to the future, and until autoanalyze has
    run, the statistics still say that most tasks are due: the grouping queries would
    then scan the table (30 ms each at 100,000 tasks) on every idle tick."""
    first = (
        TaskConfig.objects.filter(enabled=True, refresh_due_at__isnull=False)
        .order_by("refresh_due_at")
        .values_list("refresh_due_at", flat=True)
        .first()
    )
    return first is not None and first <= at


def refresh_claim(*, at: datetime | None = None, ids=None) -> list[Claim]:
    """Lease whole credential groups with due tasks (of `ids` only, if given), the oldest
    due first; returns one claim per group. Tasks whose variables cannot be resolved are
    not claimed: their run fails here, with back-off."""
    at = at or now()
    if ids is None and not _anything_due(at):
        return []
    lease = at + timedelta(seconds=settings.REFRESH_LEASE)
    with transaction.atomic():
        _serialize()
        budget = _group_budget(at)
        if budget == 0:
            return []
        due = _free(at).filter(refresh_due_at__lte=at)
        if ids is not None:
            due = due.filter(id__in=ids)
        groups, failed = _due_groups(due)
        claims = []
        for group in _choose(groups, budget):
            claim_id = uuid.uuid4()
            size = 0
            if group.static is not None:  # every free task of the group, due or not
                members = _free(at).filter(STATIC_TASKS, **group.static)
                size += members.update(lease_until=lease, claim=claim_id)
            if group.resolved:
                size += TaskConfig.objects.filter(id__in=group.resolved).update(
                    lease_until=lease, claim=claim_id
                )
            claims.append(Claim(id=claim_id, group=group.key, size=size))
        for task, error in failed:
            run_fail(run=TaskRun.objects.create(task=task, trigger=SCHEDULE), error=error)
    return claims


def claim_renew(*, claim_id: uuid.UUID, at: datetime | None = None) -> int:
    """Lease a claim's tasks again for a full lease from now, before a worker retries it
    (its first attempt failed on an outage). Only the tasks the claim still holds: one
    UPDATE, so a claimer that took them first (the lease ran out) keeps them and the retry
    finds nothing, and a claimer that comes after finds them leased."""
    lease = (at or now()) + timedelta(seconds=settings.REFRESH_LEASE)
    return TaskConfig.objects.filter(claim=claim_id).update(lease_until=lease)


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


def oldest_unclaimed_due(*, at: datetime) -> datetime | None:
    """When the longest-waiting due task that no claim holds fell due (None: none waits),
    read along the refresh_due_at index: the metrics' "due work waiting unclaimed"."""
    return (
        _free(at)
        .filter(refresh_due_at__lte=at)
        .order_by("refresh_due_at")
        .values_list("refresh_due_at", flat=True)
        .first()
    )
