"""The fleet-wide rate limits: the pace of ecr:GetAuthorizationToken calls
(ECRPORTAL_AWS_CALL_RATE), and the mechanism the sign-in throttle shares."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from tasks_app.identity.actor import SYSTEM
from tasks_app.models import CallRate, Role, TaskConfig
from tasks_app.services import claims, pacing, refresh
from tasks_app.services.pacing import Limit, call_slot_take, slot_take, slot_wait
from tasks_app.services.runs import task_run
from tasks_app.tasks import housekeeping
from tests.factories import make_connector, make_due_tasks

pytestmark = pytest.mark.django_db


def test_a_burst_of_one_second_goes_at_once_then_calls_are_paced(settings):
    settings.AWS_CALL_RATE = 5
    at = timezone.now()
    waits = [call_slot_take(at=at) for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.2, 0.4, 0.6])


def test_an_idle_bucket_fills_up_to_one_burst_and_no_more(settings):
    settings.AWS_CALL_RATE = 5
    at = timezone.now()
    for _ in range(5):
        call_slot_take(at=at)
    later = at + timedelta(hours=1)
    waits = [call_slot_take(at=later) for _ in range(6)]
    assert waits == pytest.approx([0, 0, 0, 0, 0, 0.2])


def test_no_rate_means_no_waiting_and_nothing_stored(settings):
    settings.AWS_CALL_RATE = 0
    assert [call_slot_take() for _ in range(100)] == [0.0] * 100
    assert not CallRate.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_processes_share_one_pace(settings):
    """Four threads, each with its own database connection, as four worker processes."""
    settings.AWS_CALL_RATE = 10
    at = timezone.now()

    def take(_):
        try:
            return [call_slot_take(at=at) for _ in range(10)]
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        waits = sorted(w for batch in pool.map(take, range(4)) for w in batch)
    # 40 calls at 10 per second: 10 at once, then one slot every 0.1 s, none shared.
    assert waits == pytest.approx([0.0] * 10 + [0.1 * n for n in range(1, 31)])


def test_a_scheduled_refresh_waits_its_turn(settings, monkeypatch, aws_endpoint, ecr_expiry):
    settings.AWS_CALL_RATE = 1
    slept = []
    monkeypatch.setattr(refresh.time, "sleep", slept.append)
    stopped = timezone.now()
    monkeypatch.setattr(pacing, "now", lambda: stopped)  # as if each call took no time
    tasks = make_due_tasks(3, alice=Role.EDITOR)
    team = tasks[0].job.plan.team
    connectors = [make_connector(team, name=f"c{i}") for i in range(3)]
    for task, connector in zip(tasks, connectors, strict=True):
        TaskConfig.objects.filter(pk=task.pk).update(connector=connector)
    for claim in claims.refresh_claim():
        refresh.refresh_group(claim_id=claim.id)
    assert slept == [0, 1, 2]


def test_run_now_counts_but_never_waits(settings, monkeypatch, aws_endpoint, ecr_expiry):
    settings.AWS_CALL_RATE = 1
    monkeypatch.setattr(refresh.time, "sleep", pytest.fail)
    (task,) = make_due_tasks(1)
    for _ in range(3):
        assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome == "succeeded"
    # Three slots taken: a scheduled call now would wait about three seconds.
    assert call_slot_take() == pytest.approx(3, abs=0.3)


def test_a_limit_tells_when_its_next_slot_is_free_without_taking_one():
    limit = Limit(name="test:limit", interval=timedelta(seconds=10), burst=2)
    at = timezone.now()
    assert slot_wait(limit=limit, at=at) == 0
    assert [slot_take(limit=limit, at=at) for _ in range(3)] == [0, 0, 10]
    assert slot_wait(limit=limit, at=at) == slot_wait(limit=limit, at=at) == 20
    assert slot_wait(limit=limit, at=at + timedelta(seconds=20)) == 0


def test_a_limits_name_must_fit_its_row():
    with pytest.raises(ValueError, match="1 to 50 characters"):
        Limit(name="x" * 51, interval=timedelta(seconds=1), burst=1)


def test_housekeeping_deletes_the_limits_that_have_filled_up_again():
    at = timezone.now()
    CallRate.objects.create(name="login:account:idle", next_at=at - timedelta(seconds=1))
    CallRate.objects.create(name="login:account:busy", next_at=at + timedelta(minutes=5))
    housekeeping()  # the task's body, here
    assert list(CallRate.objects.values_list("name", flat=True)) == ["login:account:busy"]
