"""Celery tasks: a thin interface that takes IDs and calls services."""

import uuid

from celery import shared_task

from tasks_app.lib import metrics
from tasks_app.services.health import canaries_purge, canary_answer
from tasks_app.services.issuer import signing_keys_purge
from tasks_app.services.notifications import notification_send as notification_send_service
from tasks_app.services.pacing import rate_limits_purge
from tasks_app.services.people import invitation_email
from tasks_app.services.refresh import refresh_group as refresh_group_service
from tasks_app.services.refresh import refresh_tick as refresh_tick_service
from tasks_app.services.run_results import credentials_unused_delete, runs_interrupted_close


@shared_task(bind=True, ignore_result=True, time_limit=30, soft_time_limit=25)
def canary(self, ping_id: str) -> None:
    canary_answer(ping_id=ping_id, worker=self.request.hostname or "unknown")


@shared_task(ignore_result=True)
def housekeeping() -> None:
    canaries_purge()
    runs_interrupted_close()
    credentials_unused_delete()
    signing_keys_purge()
    rate_limits_purge()


@shared_task(ignore_result=True)
def refresh_tick() -> None:
    """Beat runs this every ECRPORTAL_REFRESH_TICK seconds: claim due tasks, queue groups."""
    refresh_tick_service()
    metrics.beat_ticked()


@shared_task(ignore_result=True)
def refresh_group(claim_id: str) -> None:
    """Refresh the tasks of one claim (one credential group). An ID only: no secret in the
    broker; a claim that holds nothing any more (its lease ran out) is a no-op."""
    if not isinstance(claim_id, str):
        return  # a list of task IDs, queued by a version before claims: their leases run out
    refresh_group_service(claim_id=uuid.UUID(claim_id))


@shared_task(ignore_result=True)
def notification_send(delivery_id: str) -> None:
    """One attempt at a status-change notification; failures are retried by refresh_tick."""
    notification_send_service(delivery_id=delivery_id)


@shared_task(ignore_result=True, autoretry_for=(OSError,), retry_backoff=30, max_retries=5)
def invitation_send(invitation_id: str) -> None:
    """E-mail an invitation's link. An ID only: the link is a secret, built by the worker."""
    invitation_email(invitation_id=uuid.UUID(invitation_id))
