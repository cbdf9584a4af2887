"""Celery tasks: a thin interface that takes IDs and calls services."""

import logging
import uuid

from celery import shared_task
from celery.exceptions import Reject
from celery.worker import state as worker_state
from celery.worker.control import inspect_command

from tasks_app.lib import metrics
from tasks_app.lib.celery_queue import POOL_LOAD
from tasks_app.lib.outages import OUTAGES, outage_of, outage_summary, retry_delay
from tasks_app.services.health import canaries_purge, canary_answer
from tasks_app.services.issuer import signing_keys_purge
from tasks_app.services.notifications import notification_send as notification_send_service
from tasks_app.services.pacing import rate_limits_purge
from tasks_app.services.people import invitation_email
from tasks_app.services.refresh import refresh_group as refresh_group_service
from tasks_app.services.refresh import refresh_group_give_back
from tasks_app.services.refresh import refresh_tick as refresh_tick_service
from tasks_app.services.run_results import credentials_unused_delete, runs_interrupted_close

log = logging.getLogger(__name__)

# Retries of a refresh that failed on an outage: 1, 2, 4, 8, 16 s, then every 30 s
# (lib/outages.retry_delay), about ten minutes in all.
REFRESH_RETRIES = 24


@shared_task(bind=True, ignore_result=True, time_limit=30, soft_time_limit=25)
def canary(self, ping_id: str) -> None:
    canary_answer(ping_id=ping_id, worker=self.request.hostname or "unknown")


@inspect_command(name=POOL_LOAD)
def pool_load(state) -> dict[str, int]:
    """Answered by a worker's consumer, in its main process: how many processes its pool has
    and how many are inside a task. /readyz asks when its canary waits (services/health.py):
    a worker whose every process is busy cannot take the canary, and is not down."""
    return {
        "processes": state.consumer.pool.num_processes,
        "busy": len(worker_state.active_requests),
    }


@shared_task(ignore_result=True)
def housekeeping() -> None:
    canaries_purge()
    runs_interrupted_close()
    credentials_unused_delete()
    signing_keys_purge()
    rate_limits_purge()


@shared_task(ignore_result=True)
def refresh_tick() -> None:
    """Beat runs this every ECRPORTAL_REFRESH_TICK seconds: claim due tasks, queue groups.
    During an outage a tick is skipped with one line; the next one claims what is due."""
    try:
        refresh_tick_service()
    except OUTAGES as e:
        log.warning(
            "Refresh tick skipped: %s is unavailable (%s).", outage_of(e), outage_summary(e)
        )
        return
    metrics.beat_ticked()


@shared_task(bind=True, ignore_result=True, max_retries=REFRESH_RETRIES)
def refresh_group(self, claim_id: str) -> None:
    """Refresh the tasks of one claim (one credential group). An ID only: no secret in the
    broker; a claim that holds nothing any more (its lease ran out) is a no-op.

    If the database or the broker fails under it, the refresh is retried with back-off
    (renewing its lease), so the group is refreshed within RETRY_DELAY_MAX seconds of
    their return rather than when the lease runs out; if it cannot be retried, the claim
    is given back."""
    if not isinstance(claim_id, str):
        return  # a list of task IDs, queued by a version before claims: their leases run out
    claim = uuid.UUID(claim_id)
    attempt = self.request.retries
    try:
        refresh_group_service(claim_id=claim, retry=attempt > 0)
    except OUTAGES as e:
        if attempt < REFRESH_RETRIES:
            try:
                raise self.retry(exc=e, countdown=retry_delay(attempt)) from None
            except Reject:
                pass  # the broker cannot take the retry either
        refresh_group_give_back(claim_id=claim, error=e)


@shared_task(ignore_result=True)
def notification_send(delivery_id: str) -> None:
    """One attempt at a status-change notification; failures are retried by refresh_tick."""
    notification_send_service(delivery_id=delivery_id)


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def invitation_send(invitation_id: str) -> None:
    """E-mail an invitation's link. An ID only: the link is a secret, built by the worker."""
    invitation_email(invitation_id=uuid.UUID(invitation_id))
