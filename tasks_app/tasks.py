"""Celery tasks: a thin interface that takes IDs and calls services."""

from celery import shared_task

from tasks_app.services.health import canaries_purge, canary_answer


@shared_task(bind=True, ignore_result=True, time_limit=30, soft_time_limit=25)
def canary(self, ping_id: str) -> None:
    canary_answer(ping_id=ping_id, worker=self.request.hostname or "unknown")


@shared_task(ignore_result=True)
def housekeeping() -> None:
    canaries_purge()
