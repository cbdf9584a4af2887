"""Scheduled refresh (SPEC §7): claim due credential groups, one AWS call per group.

- A task is due when refresh_due_at has passed (tasks_app/rules/refresh_schedule.py says how it
  is set).
- A tick claims whole groups (services/claims.py) and queues one message per claim;
  the worker makes one ecr:GetAuthorizationToken for the group, at the fleet's pace
  (services/pacing.py), stores the answer once (one Credential) and writes its tasks in
  parts of PART, each part in its own short transaction.
- Tasks that share credentials (connector, or the host's role) and region share one
  call: tokens are region-bound and registry-independent.
- A refresh that fails because the database or the broker is down (lib/outages.py) is
  retried by its Celery task with back-off, renewing its lease first; if it cannot be,
  refresh_group_give_back releases the claim so the next tick takes the group.
"""

import functools
import logging
import time
import uuid
from collections import defaultdict
from typing import NamedTuple

from django.db import transaction
from django.utils.timezone import now
from kombu.exceptions import OperationalError

from tasks_app.lib import aws
from tasks_app.lib.celery_queue import REFRESH_GROUP, celery_task
from tasks_app.lib.crypto import EncryptionError
from tasks_app.lib.log_context import log_context
from tasks_app.lib.outages import OUTAGES, outage_of, outage_summary
from tasks_app.models import Credential, TaskConfig, TaskRun
from tasks_app.services.claims import (
    Claim,
    claim_release,
    claim_renew,
    claimed_task_ids,
    refresh_claim,
)
from tasks_app.services.notifications import (
    notifications_enqueue_due,
    notifications_queue,
)
from tasks_app.services.pacing import call_slot_take
from tasks_app.services.run_inputs import RunError, task_resolve
from tasks_app.services.run_results import (
    credential_for,
    run_fail,
    runs_cut_off_close,
    runs_deliver,
)
from tasks_app.services.status import expired_task_ids, statuses_record

log = logging.getLogger(__name__)

PART = 1000  # tasks loaded and written per transaction by a worker
SCHEDULE = TaskRun.Trigger.SCHEDULE
LOGGED_TASKS = 20  # task IDs named in a group refresh's log lines


def _tasks(task_ids):
    return TaskConfig.objects.filter(id__in=task_ids, enabled=True).select_related(
        "job__plan__team", "connector__team"
    )


def _call(
    principal, region: str, group: str, public: bool
) -> Credential | aws.AwsError | EncryptionError:
    """One GetAuthorizationToken (ECR's or ECR Public's) at the fleet's pace, stored once;
    or why it failed."""
    time.sleep(call_slot_take())
    try:
        authorization = aws.ecr_authorization(
            principal, caller=aws.session_name(None), region=region, public=public
        )
    except (aws.AwsError, EncryptionError) as e:
        return e
    return credential_for(authorization=authorization, group=group)


def refresh_group(*, claim_id: uuid.UUID, retry: bool = False) -> int:
    """Refresh the tasks a claim holds: one AWS call per (credentials, region) they resolve
    to (one, unless a variable changed since the claim), written in parts. Returns how
    many tasks got new credentials; 0 when the claim holds nothing any more.

    A retry (an earlier attempt failed on an outage) first leases the tasks the claim
    still holds for a whole lease again, so no tick takes them while it runs, and closes
    the runs the outage cut off."""
    with log_context(claim=str(claim_id)):
        return _refresh(claim_id, retry=retry)


def _tasks_named(members: list) -> str:
    """The tasks a log line is about, by ID (the first 20 of a large group)."""
    ids = [str(task.pk) for task, _ in members[:LOGGED_TASKS]]
    return ",".join(ids) + (",…" if len(members) > LOGGED_TASKS else "")


def _refresh(claim_id: uuid.UUID, *, retry: bool) -> int:
    if retry:
        claim_renew(claim_id=claim_id)
    memo: dict = {}
    outcomes: dict[tuple, Credential | aws.AwsError | EncryptionError] = {}
    refreshed = 0
    ids = claimed_task_ids(claim_id=claim_id)
    if retry:
        runs_cut_off_close(task_ids=ids)
    for start in range(0, len(ids), PART):
        tasks = list(_tasks(ids[start : start + PART]))
        runs = TaskRun.objects.bulk_create(
            [TaskRun(task=task, trigger=SCHEDULE, started=now()) for task in tasks]
        )
        by_call: defaultdict[tuple, list] = defaultdict(list)
        for task, run in zip(tasks, runs, strict=True):
            try:
                resolved = task_resolve(task=task, trigger=SCHEDULE, memo=memo)
            except (RunError, EncryptionError) as e:
                run_fail(run=run, error=e)
                continue
            run.region, run.connector = resolved.region, resolved.connector
            by_call[(resolved.principal, resolved.region, resolved.group, resolved.public)].append(
                (task, run)
            )
        for key, members in by_call.items():
            # A failed call's log line says which credentials (the group: connector or
            # host role, region) and which tasks.
            with log_context(group=key[2], task=_tasks_named(members)):
                if key not in outcomes:
                    outcomes[key] = _call(*key)
                outcome = outcomes[key]
                if isinstance(outcome, Credential):
                    refreshed += runs_deliver(credential=outcome, runs=members)
                else:
                    for _, run in members:
                        run_fail(run=run, error=outcome)
    return refreshed


def refresh_group_give_back(*, claim_id: uuid.UUID, error: BaseException) -> None:
    """A refresh failed on an outage and will not be retried (the broker cannot take the
    retry, or the retries are spent): release its claim so that the next tick takes the
    group at once. If the database is still down, the lease runs out instead."""
    what = f"{outage_of(error) or 'a service'} is unavailable: {outage_summary(error)}"
    try:
        released = claim_release(claim_id=claim_id)
    except OUTAGES as e:
        log.warning(
            "Refresh of claim %s stopped (%s); its lease runs out instead (%s).",
            claim_id,
            what,
            outage_summary(e),
        )
        return
    log.warning("Refresh of claim %s stopped (%s); released %d tasks.", claim_id, what, released)


def _enqueue(task, claim: Claim) -> None:
    """Queue a claim; if the broker cannot take it, give its tasks back at once rather
    than leave them leased until the lease runs out."""
    try:
        task.delay(str(claim.id))
    except OperationalError as e:
        claim_release(claim_id=claim.id)
        log.warning("Could not queue the refresh of %d tasks (%s); released them.", claim.size, e)


def _queue(claims: list[Claim]) -> None:
    """Queue one refresh per claim after the commit."""
    refresh_group_task = celery_task(REFRESH_GROUP)
    for claim in claims:
        transaction.on_commit(functools.partial(_enqueue, refresh_group_task, claim))


def refresh_tick(*, at=None) -> int:
    """Claim what is due and queue one refresh per group (after this transaction commits).

    Also records the tokens that ran out since the last tick, and queues the
    notifications whose attempt is due (a retry, or one a lost worker held).
    """
    at = at or now()
    claims = refresh_claim(at=at)
    _queue(claims)
    expiries_record(at=at)
    notifications_enqueue_due(at=at)
    return sum(claim.size for claim in claims)


def expiries_record(*, at=None) -> list:
    """Record the tokens that ran out since the last tick (nothing ran), and notify."""
    ids = expired_task_ids(at=at)
    if not ids:
        return []
    with transaction.atomic():
        changes = statuses_record(task_ids=ids, at=at)
        notifications_queue(changes=changes)
    return changes


class Requested(NamedTuple):
    asked: int  # tasks asked for
    queued: int  # tasks queued, with the others of their groups
    groups: int  # AWS calls they take


def refresh_request(*, tasks, at=None) -> Requested:
    """Refresh these tasks now, through the workers ("Refresh all due").

    Tasks another worker holds are left to it; the others of their groups come along (one
    AWS call serves them all). Those beyond what the fleet's rate allows now stay due, so
    the next ticks take them.
    """
    at = at or now()
    ids = list(tasks.filter(enabled=True).values_list("id", flat=True))
    TaskConfig.objects.filter(id__in=ids).update(refresh_due_at=at)
    claims = refresh_claim(at=at, ids=ids)
    _queue(claims)
    return Requested(
        asked=len(ids), queued=sum(claim.size for claim in claims), groups=len(claims)
    )
