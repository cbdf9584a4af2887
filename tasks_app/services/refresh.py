"""Scheduled refresh (SPEC §7): claim due tasks, group them, one AWS call per group.

- A task is due when refresh_due_at has passed (tasks_app/schedule.py says how it
  is set).
- Claims are compare-and-set updates of lease_until: two beats, or many
  workers, never take the same task; a lease left by a killed worker expires
  after ECRPORTAL_REFRESH_LEASE seconds and the task is claimed again.
- Tasks that share credentials (source, connector, role) and region share one
  ecr:GetAuthorizationToken: tokens are region-bound and registry-independent.
"""

import functools
import logging
from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils.timezone import now
from kombu.exceptions import OperationalError

from tasks_app import aws
from tasks_app.crypto import EncryptionError
from tasks_app.models import TaskConfig, TaskRun
from tasks_app.queue import REFRESH_GROUP, celery_task
from tasks_app.services.inputs import RunError, task_resolve
from tasks_app.services.notifications import (
    notification_enqueue,
    notifications_due,
    notifications_queue,
)
from tasks_app.services.results import run_fail, runs_deliver
from tasks_app.services.status import expired_task_ids, statuses_record

# At most this many tasks are claimed per tick, and refreshed per worker message
# (a larger group is split: one AWS call per part).
log = logging.getLogger(__name__)

CLAIM_BATCH = 20000
GROUP_SIZE = 500
SCHEDULE = TaskRun.Trigger.SCHEDULE


def _due(at):
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=at)
    return TaskConfig.objects.filter(free, enabled=True, refresh_due_at__lte=at).order_by(
        "refresh_due_at"
    )


def refresh_claim(*, at=None, limit: int = CLAIM_BATCH, ids=None) -> list:
    """Lease up to `limit` due tasks; returns the IDs this call claimed.

    PostgreSQL: one locking read (FOR UPDATE SKIP LOCKED: rows another claimer
    holds are passed over, not waited for) and one update. Elsewhere (SQLite):
    a compare-and-set update per task.
    """
    at = at or now()
    lease = at + timedelta(seconds=settings.REFRESH_LEASE)
    due = _due(at) if ids is None else _due(at).filter(id__in=ids)
    if connection.features.has_select_for_update_skip_locked:
        with transaction.atomic():
            claimed = list(
                due.select_for_update(skip_locked=True).values_list("id", flat=True)[:limit]
            )
            TaskConfig.objects.filter(id__in=claimed).update(lease_until=lease)
        return claimed
    claimed = []
    for task_id, seen in due.values_list("id", "lease_until")[:limit]:
        unchanged = Q(lease_until__isnull=True) if seen is None else Q(lease_until=seen)
        if TaskConfig.objects.filter(unchanged, pk=task_id).update(lease_until=lease):
            claimed.append(task_id)
    return claimed


def _tasks(task_ids):
    return TaskConfig.objects.filter(id__in=task_ids, enabled=True).select_related(
        "job__plan__team", "connector__team"
    )


def refresh_groups(task_ids) -> list[list]:
    """The claimed tasks, grouped by the AWS call that serves them.

    A task's credentials source, connector, role and region name its call. Tasks
    that take their connector or region from a variable are resolved first; those
    that cannot be resolved fail here, with a run that says why.
    """
    groups = defaultdict(list)
    for task in (
        _tasks(task_ids)
        .select_related(None)
        .only(
            "id",
            "job",
            "credentials_source",
            "connector",
            "connector_variable",
            "role_arn",
            "region",
            "region_variable",
        )
    ):
        if task.region_variable or task.connector_variable:
            task = TaskConfig.objects.select_related("job__plan__team").get(pk=task.pk)
            try:
                resolved = task_resolve(task=task, trigger=SCHEDULE)
            except (RunError, EncryptionError) as e:
                run_fail(run=TaskRun.objects.create(task=task, trigger=SCHEDULE), error=e)
                continue
            connector_id = resolved.connector.pk if resolved.connector else None
            key = (task.credentials_source, connector_id, task.role_arn, resolved.region)
        else:
            key = (task.credentials_source, task.connector_id, task.role_arn, task.region)
        groups[key].append(task.id)
    return [
        ids[i : i + GROUP_SIZE] for ids in groups.values() for i in range(0, len(ids), GROUP_SIZE)
    ]


def refresh_group(*, task_ids) -> int:
    """Refresh tasks that share credentials and region, with one GetAuthorizationToken."""
    tasks = list(_tasks(task_ids))
    runs = TaskRun.objects.bulk_create(
        [TaskRun(task=task, trigger=SCHEDULE, started=now()) for task in tasks]
    )
    by_call: defaultdict[tuple, list] = defaultdict(list)
    memo: dict = {}
    for task, run in zip(tasks, runs, strict=True):
        try:
            resolved = task_resolve(task=task, trigger=SCHEDULE, memo=memo)
        except (RunError, EncryptionError) as e:
            run_fail(run=run, error=e)
            continue
        run.region, run.connector = resolved.region, resolved.connector
        by_call[(resolved.principal, resolved.region, resolved.group)].append((task, run))

    refreshed = 0
    caller = aws.session_name(None)
    for (principal, region, group), members in by_call.items():
        try:
            authorization = aws.ecr_authorization(principal, caller=caller, region=region)
        except (aws.AwsError, EncryptionError) as e:
            for _, run in members:
                run_fail(run=run, error=e)
            continue
        runs_deliver(authorization=authorization, group=group, runs=members)
        refreshed += len(members)
    return refreshed


def _enqueue(task, ids) -> None:
    """Queue a group; if the broker cannot take it, give the tasks back at once rather
    than leave them leased until the lease runs out."""
    try:
        task.delay([str(i) for i in ids])
    except OperationalError as e:
        TaskConfig.objects.filter(id__in=ids).update(lease_until=None)
        log.warning("Could not queue the refresh of %d tasks (%s); released them.", len(ids), e)


def _queue_groups(claimed) -> list[list]:
    """Group claimed tasks and queue one refresh per group after the commit."""
    refresh_group_task = celery_task(REFRESH_GROUP)
    groups = refresh_groups(claimed)
    for group in groups:
        transaction.on_commit(functools.partial(_enqueue, refresh_group_task, group))
    return groups


def refresh_tick(*, at=None) -> int:
    """Claim what is due and queue one refresh per group (after this transaction commits).

    Also records the tokens that ran out since the last tick, and queues the
    notifications whose attempt is due (a retry, or one a lost worker held).
    """
    at = at or now()
    claimed = refresh_claim(at=at)
    _queue_groups(claimed)
    expiries_record(at=at)
    for delivery_id in notifications_due(at=at):
        notification_enqueue(delivery_id=delivery_id)
    return len(claimed)


def expiries_record(*, at=None) -> list:
    """Record the tokens that ran out since the last tick (nothing ran), and notify."""
    ids = expired_task_ids(at=at)
    if not ids:
        return []
    with transaction.atomic():
        changes = statuses_record(task_ids=ids, at=at)
        notifications_queue(changes=changes)
    return changes


def refresh_request(*, tasks, at=None) -> tuple[int, int]:
    """Refresh these tasks now, through the workers ("Refresh all due").

    Returns (tasks queued, groups): tasks another worker holds are left to it.
    """
    at = at or now()
    ids = list(tasks.filter(enabled=True).values_list("id", flat=True))
    TaskConfig.objects.filter(id__in=ids).update(refresh_due_at=at)
    claimed = refresh_claim(at=at, ids=ids)
    return len(claimed), len(_queue_groups(claimed))
