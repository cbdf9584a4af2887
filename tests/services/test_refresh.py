"""Scheduled refresh (SPEC §7): due times, exclusive claims, one AWS call per group, back-off."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from ecrportal.celery import app as celery_app
from tasks_app.identity.actor import SYSTEM, Actor
from tasks_app.models import Credential, Role, TaskConfig, TaskRun
from tasks_app.rules.refresh_schedule import backoff, next_refresh
from tasks_app.services import claims, refresh
from tasks_app.services import run_results as results
from tasks_app.services.runs import task_run
from tests.factories import generated, make_due_tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def clock(monkeypatch):
    """A clock the services read instead of the real one; advance it with clock.at += ..."""

    class Clock:
        at = timezone.now()

        def __call__(self):
            return self.at

    fake = Clock()
    monkeypatch.setattr(results, "now", fake)
    monkeypatch.setattr(refresh, "now", fake)
    monkeypatch.setattr(claims, "now", fake)
    return fake


def _refresh_due(at=None):
    """What a tick and its workers do, in this process: claim, then refresh each claim."""
    refreshed = 0
    for claim in claims.refresh_claim(at=at):
        refreshed += refresh.refresh_group(claim_id=claim.id)
    return refreshed


def _claimed(at=None):
    return [task_id for claim in claims.refresh_claim(at=at) for task_id in _held(claim)]


def _tasks(count, *, registry_ids=()):
    return make_due_tasks(count, registry_ids=registry_ids, alice=Role.EDITOR)


def _held(claim):
    return sorted(claims.claimed_task_ids(claim_id=claim.id))


def _ecr_calls(aws_calls):
    return [c for c in aws_calls if c["operation"] == "api.ecr:GetAuthorizationToken"]


def test_the_next_refresh_is_due_before_expiry():
    at = timezone.now()
    expires = at + timedelta(hours=12)
    due = next_refresh(expires_at=expires, at=at)
    six_hours_before = expires - timedelta(seconds=settings.MIN_REMAINING)
    assert six_hours_before - timedelta(seconds=settings.REFRESH_JITTER) <= due <= six_hours_before


def test_short_tokens_are_refreshed_halfway_not_in_a_loop():
    at = timezone.now()
    assert next_refresh(expires_at=at + timedelta(hours=1), at=at) == at + timedelta(minutes=30)


def test_back_off_grows_exponentially_with_jitter_up_to_the_cap():
    for failures in range(1, 12):
        ceiling = min(settings.BACKOFF_CAP, settings.BACKOFF_BASE * 2 ** (failures - 1))
        for _ in range(20):
            assert ceiling * 0.5 <= backoff(failures).total_seconds() <= ceiling
    assert backoff(50).total_seconds() <= 1800


def test_a_good_run_schedules_the_next_refresh(aws_endpoint, ecr_expiry):
    (task,) = _tasks(1)
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    task.refresh_from_db()
    assert task.failures == 0
    assert task.lease_until is None
    hours_left = (run.token_expires_at - task.refresh_due_at).total_seconds() / 3600
    assert 6 <= hours_left <= 6.1


def test_due_groups_are_refreshed_and_others_are_not(aws_endpoint, ecr_expiry, aws_calls, clock):
    due, later = _tasks(2)
    TaskConfig.objects.filter(pk=later.pk).update(
        region="us-east-1", refresh_due_at=clock.at + timedelta(hours=1)
    )

    (claim,) = claims.refresh_claim()
    assert _held(claim) == [due.id]
    assert claim.group == f"connector:{due.connector_id}|eu-west-1"
    assert refresh.refresh_group(claim_id=claim.id) == 1

    assert TaskRun.objects.filter(task=due, trigger="schedule", outcome="succeeded").count() == 1
    assert not TaskRun.objects.filter(task=later).exists()
    assert len(generated(due)) == 7
    due.refresh_from_db()
    assert due.refresh_due_at > clock.at + timedelta(hours=5)
    assert (due.lease_until, due.claim) == (None, None)
    assert claims.refresh_claim() == []


def test_a_due_task_brings_its_whole_group_and_their_times_align(
    aws_endpoint, ecr_expiry, aws_calls, clock
):
    """A manual run (or a new task) set one task's refresh time apart; the group's next
    scheduled refresh takes all of them with one call and gives them one time again."""
    tasks = _tasks(4)
    TaskConfig.objects.filter(pk__in=[t.pk for t in tasks[1:]]).update(
        refresh_due_at=clock.at + timedelta(hours=3)
    )
    (claim,) = claims.refresh_claim()
    assert _held(claim) == sorted(t.id for t in tasks)
    assert refresh.refresh_group(claim_id=claim.id) == 4
    assert len(_ecr_calls(aws_calls)) == 1
    times = set(TaskConfig.objects.values_list("refresh_due_at", flat=True))
    assert len(times) == 1


def test_a_claim_that_lost_its_lease_does_nothing(aws_endpoint, ecr_expiry, aws_calls, clock):
    _tasks(1)
    (stale,) = claims.refresh_claim()
    clock.at += timedelta(seconds=settings.REFRESH_LEASE + 1)
    (fresh,) = claims.refresh_claim()
    assert refresh.refresh_group(claim_id=stale.id) == 0
    assert aws_calls == []
    assert refresh.refresh_group(claim_id=fresh.id) == 1


def test_fifty_tasks_sharing_a_connector_and_region_make_one_call(
    aws_endpoint, ecr_expiry, aws_calls
):
    tasks = _tasks(50, registry_ids=["210987654321"])
    (claim,) = claims.refresh_claim()
    assert claim.size == 50
    assert refresh.refresh_group(claim_id=claim.id) == 50

    assert len(_ecr_calls(aws_calls)) == 1
    assert _ecr_calls(aws_calls)[0]["params"] == {}  # registry-independent
    endpoints = {task.id: generated(task)["custom.aws.ecr.proxyEndpoint"] for task in tasks}
    assert endpoints[tasks[0].id] == "https://210987654321.dkr.ecr.eu-west-1.amazonaws.com"
    assert endpoints[tasks[1].id] == "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    # One AWS answer, stored once (encrypted once) for the fifty tasks; a run each.
    (credential,) = Credential.objects.all()
    assert TaskConfig.objects.filter(credential=credential).count() == 50
    assert TaskRun.objects.filter(outcome="succeeded").count() == 50
    assert len({generated(task)["custom.aws.ecr.password"] for task in tasks}) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_take_each_task_once():
    tasks = _tasks(40)

    def claim(_):
        try:
            return _claimed()
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(claim, range(4)))
    claimed = [task_id for result in results for task_id in result]
    assert sorted(claimed) == sorted(t.id for t in tasks)
    assert len(claimed) == len(set(claimed))


def test_a_lease_left_by_a_killed_worker_expires(clock):
    (task,) = _tasks(1)
    assert _claimed() == [task.id]
    assert _claimed() == []  # leased
    clock.at += timedelta(seconds=settings.REFRESH_LEASE + 1)
    assert _claimed() == [task.id]


def test_an_expired_token_from_aws_backs_off_without_a_hot_loop(aws_endpoint, aws_calls, clock):
    """moto's tokens expire on 2015-01-01: stored as expired, retried later, never in a loop."""
    (task,) = _tasks(1)
    ticks = 0
    end = clock.at + timedelta(minutes=30)
    while clock.at < end:  # beat's 30-second tick over half an hour
        _refresh_due()
        clock.at += timedelta(seconds=30)
        ticks += 1
    calls = len(_ecr_calls(aws_calls))
    task.refresh_from_db()
    assert ticks == 60
    assert 3 <= calls <= 10  # back-off: ~30 s, 1, 2, 4, 8 min ... not 60
    assert task.failures == calls
    assert task.status == "expired"
    assert "expired already" in task.last_error


def test_disabled_tasks_are_never_scheduled(aws_endpoint):
    from tasks_app.services.plans import task_save

    (task,) = _tasks(1)

    actor = Actor(user=task.job.plan.team.members.get())

    task.enabled = False
    task_save(task=task, actor=actor)
    task.refresh_from_db()
    assert task.refresh_due_at is None
    assert claims.refresh_claim(at=timezone.now() + timedelta(days=30)) == []

    task.enabled = True
    task_save(task=task, actor=actor)
    task.refresh_from_db()
    assert task.refresh_due_at <= timezone.now()


def test_the_beat_tick_queues_groups_that_the_worker_refreshes(
    aws_endpoint, ecr_expiry, django_capture_on_commit_callbacks
):
    from tasks_app.tasks import refresh_tick

    tasks = _tasks(3)
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            refresh_tick.delay()
    finally:
        celery_app.conf.task_always_eager = False
    assert len(callbacks) == 1  # one group
    for task in tasks:
        assert len(generated(task)) == 7


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("ThrottleException", 400),
        ("TooManyRequestsException", 429),
        ("InternalServerError", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_a_failing_refresh_serves_the_old_token_until_it_expires(
    aws_endpoint, ecr_expiry, aws_failure, code, status, clock
):
    from django.urls import reverse
    from rest_framework.test import APIClient

    from tasks_app.services.tokens import token_create

    (task,) = _tasks(1)
    assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome == "succeeded"
    good = generated(task)["custom.aws.ecr.password"]

    actor = Actor(user=task.job.plan.team.members.get())

    _, raw = token_create(
        plan=task.job.plan, job=task.job, name="ci", expires_at=None, actor=actor
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    url = reverse("api_task_variables", args=[task.id])

    aws_failure("api.ecr:GetAuthorizationToken", code, status=status)
    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at=clock.at)
    _refresh_due()
    task.refresh_from_db()
    assert task.status == "failing"
    assert task.failures == 1
    assert task.refresh_due_at > clock.at  # retried with back-off, not at once
    response = client.get(url)
    assert response.status_code == 200
    assert response.json()["variables"]["custom.aws.ecr.password"] == good

    # Once the last good token has expired: 409 with the reason, never the stale value.
    Credential.objects.filter(tasks=task).update(expires_at=timezone.now() - timedelta(seconds=1))
    from tasks_app.lib import caches

    caches.caches_clear()
    response = client.get(url)
    assert response.status_code == 409
    assert code in TaskRun.objects.filter(trigger="schedule").get().error_class
    assert good not in response.content.decode()


def test_an_unreachable_endpoint_backs_off_too(settings, clock):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{s.getsockname()[1]}"
    (task,) = _tasks(1)
    _refresh_due()
    task.refresh_from_db()
    assert (task.failures, task.last_run_ok) == (1, False)
    assert "Could not connect to" in task.last_error
    assert task.refresh_due_at > clock.at


def test_a_timeout_is_retried_then_backs_off(settings, clock):
    """An endpoint that accepts the connection and never answers: a read timeout."""
    import socket
    import threading

    settings.AWS_READ_TIMEOUT = 1
    settings.AWS_MAX_ATTEMPTS = 2
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held = []

    def accept():
        while True:
            try:
                held.append(listener.accept()[0])  # and say nothing
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        (task,) = _tasks(1)
        _refresh_due()
    finally:
        listener.close()
        for conn in held:
            conn.close()
    task.refresh_from_db()
    assert len(held) == 2  # botocore tried twice (ECRPORTAL_AWS_MAX_ATTEMPTS)
    assert (task.failures, task.last_run_ok, task.status) == (1, False, "failing")
    assert "did not answer ecr:GetAuthorizationToken within 1 s" in task.last_error
    assert task.refresh_due_at > clock.at + timedelta(seconds=settings.BACKOFF_BASE * 0.4)
    assert claims.refresh_claim() == []  # not again at once


def test_a_tick_that_cannot_queue_gives_the_tasks_back(
    monkeypatch, django_capture_on_commit_callbacks
):
    from kombu.exceptions import OperationalError

    from tasks_app import tasks as celery_tasks

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(celery_tasks.refresh_group, "delay", broker_down)
    (task,) = _tasks(1)
    with django_capture_on_commit_callbacks(execute=True):
        assert refresh.refresh_tick() == 1
    task.refresh_from_db()
    assert task.lease_until is None  # claimed again at the next tick, not after the lease
    assert _claimed() == [task.id]
