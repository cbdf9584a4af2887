"""Notifications with real processes: beat and a worker over Redis, deliveries waiting."""

import base64
import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone

from tasks_app.models import NotificationDelivery, Role, TaskStatusChange, Team
from tests.factories import make_connector, make_job, make_plan, make_task, make_team
from tests.helpers import beat_process, portal_env, wait_for, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

NOTIFICATION_SEND = "tasks_app.tasks.notification_send"


def _queued_sends(broker) -> list[str]:
    """The delivery IDs of the notification messages waiting in the default queue."""
    found = []
    for raw in broker.lrange("celery", 0, -1):
        message = json.loads(raw)
        if message["headers"]["task"] == NOTIFICATION_SEND:
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            found.append(args[0])
    return found


def _ticks_done(worker) -> int:
    return len(
        re.findall(r"Task tasks_app\.tasks\.refresh_tick\[[^]]+\] succeeded", worker.output())
    )


def test_ticks_queue_a_waiting_delivery_once_and_unsendable_email_never(redis_url, tmp_path):
    import redis

    team = make_team("Platform", alice=Role.ADMIN)
    Team.objects.filter(pk=team.pk).update(webhook_url="https://hooks.example.com/ecr")
    task = make_task(make_job(make_plan(team)), make_connector(team))
    due = timezone.now() - timedelta(minutes=1)
    webhooks, emails = [], []
    for _ in range(5):
        # Recorded while the broker could not take their message: due, nothing queued.
        change = TaskStatusChange.objects.create(task=task, previous="ok", status="failing")
        webhooks.append(
            NotificationDelivery.objects.create(
                team=team,
                change=change,
                channel="webhook",
                target="https://hooks.example.com/ecr",
                next_attempt_at=due,
            )
        )
        emails.append(
            NotificationDelivery.objects.create(
                team=team, change=change, channel="email", next_attempt_at=due
            )
        )

    env = portal_env(
        tmp_path, CELERY_BROKER_URL=redis_url, ECRPORTAL_REFRESH_TICK="1", ECRPORTAL_EMAIL_HOST=""
    )
    # The worker runs the ticks but cannot deliver: it serves the quick queue only, so the
    # notification messages wait in the default queue as behind a long refresh wave.
    worker = worker_process(env, tmp_path, extra=("--queues", "quick")).start()
    beat = beat_process(env, tmp_path).start()
    broker = redis.Redis.from_url(redis_url)
    try:
        wait_for(lambda: _ticks_done(worker) >= 5, timeout=90, what="five refresh ticks")
        queued = _queued_sends(broker)
    finally:
        beat.stop()
        worker.stop()
        broker.close()

    print(f"{_ticks_done(worker)} ticks queued {len(queued)} sends for {len(webhooks)} webhooks")
    assert sorted(queued) == sorted(str(d.id) for d in webhooks)  # each once
    for delivery in emails:
        delivery.refresh_from_db()
        assert delivery.state == "skipped"
        assert "ECRPORTAL_EMAIL_HOST" in delivery.last_error
    for delivery in webhooks:
        delivery.refresh_from_db()
        assert (delivery.state, delivery.attempts) == ("pending", 0)
        assert delivery.queued_until > timezone.now()
