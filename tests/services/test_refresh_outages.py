"""A refresh that fails on an outage (issue 25 §2.1): retried with back-off, its lease
renewed first, and given back when it cannot be retried; never held until the lease runs
out. tests/integration/test_database_outage.py does it with a real worker and PostgreSQL."""

import logging
from datetime import timedelta

import pytest
from celery.exceptions import Reject
from django.db import OperationalError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from tasks_app import tasks as celery_tasks
from tasks_app.lib import aws
from tasks_app.models import TaskConfig, TaskRun
from tasks_app.services import claims, refresh
from tests.factories import make_due_tasks

pytestmark = pytest.mark.django_db


def _held_until(tasks):
    return set(
        TaskConfig.objects.filter(pk__in=[t.pk for t in tasks]).values_list("lease_until", "claim")
    )


def _failing(times: int, error=None):
    """A stand-in for the refresh service that fails `times` times, then refreshes."""
    real = refresh.refresh_group
    attempts = []

    def service(*, claim_id, retry=False):
        attempts.append(retry)
        if len(attempts) <= times:
            raise error or OperationalError("terminating connection due to administrator command")
        return real(claim_id=claim_id, retry=retry)

    return service, attempts


def test_a_refresh_that_fails_on_the_database_is_retried_and_refreshes(
    monkeypatch, aws_endpoint, ecr_expiry, aws_calls
):
    tasks = make_due_tasks(2)
    (claim,) = claims.refresh_claim()
    service, attempts = _failing(2)
    monkeypatch.setattr(celery_tasks, "refresh_group_service", service)

    celery_tasks.refresh_group.apply(args=[str(claim.id)])  # eager: retries at once

    assert attempts == [False, True, True]  # the retries renew the lease first
    assert _held_until(tasks) == {(None, None)}
    assert TaskConfig.objects.filter(pk__in=[t.pk for t in tasks], credential=None).count() == 0
    assert len([c for c in aws_calls if c["operation"].endswith("GetAuthorizationToken")]) == 1


def test_runs_an_outage_cut_off_are_closed_when_the_refresh_is_retried(
    monkeypatch, aws_endpoint, ecr_expiry
):
    tasks = make_due_tasks(2)
    (claim,) = claims.refresh_claim()
    real_call = aws.ecr_authorization
    calls = []

    def call(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:  # the database goes away while AWS answers
            raise OperationalError("server closed the connection unexpectedly")
        return real_call(*args, **kwargs)

    monkeypatch.setattr(aws, "ecr_authorization", call)
    celery_tasks.refresh_group.apply(args=[str(claim.id)])

    assert len(calls) == 2
    runs = TaskRun.objects.filter(task__in=tasks)
    assert sorted(runs.values_list("outcome", "error_class")) == [
        ("failed", "Interrupted"),
        ("failed", "Interrupted"),
        ("succeeded", ""),
        ("succeeded", ""),
    ]
    cut_off = runs.filter(outcome="failed").first()
    assert cut_off.finished is not None
    assert cut_off.error_message.startswith("The database or the message broker became")
    assert _held_until(tasks) == {(None, None)}


def test_a_retry_leases_the_claim_again_for_a_whole_lease(settings):
    tasks = make_due_tasks(2)
    at = timezone.now()
    (claim,) = claims.refresh_claim(at=at - timedelta(minutes=5))
    assert claims.claim_renew(claim_id=claim.id, at=at) == 2
    lease = at + timedelta(seconds=settings.REFRESH_LEASE)
    assert _held_until(tasks) == {(lease, claim.id)}


def test_a_retry_renews_nothing_another_claim_took(settings):
    tasks = make_due_tasks(2)
    at = timezone.now()
    (old,) = claims.refresh_claim(at=at - timedelta(seconds=settings.REFRESH_LEASE + 1))
    (new,) = claims.refresh_claim(at=at)  # the old lease ran out: a tick took the group
    assert claims.claim_renew(claim_id=old.id) == 0
    assert {claim for _, claim in _held_until(tasks)} == {new.id}
    assert refresh.refresh_group(claim_id=old.id, retry=True) == 0  # nothing to do


def test_when_the_retries_are_spent_the_claim_is_given_back(monkeypatch, caplog):
    tasks = make_due_tasks(2)
    (claim,) = claims.refresh_claim()
    service, attempts = _failing(1_000)
    monkeypatch.setattr(celery_tasks, "refresh_group_service", service)

    with caplog.at_level(logging.WARNING):
        celery_tasks.refresh_group.apply(args=[str(claim.id)])

    assert len(attempts) == celery_tasks.REFRESH_RETRIES + 1
    assert _held_until(tasks) == {(None, None)}  # the next tick takes the group
    assert (claims.refresh_claim()[0].size) == 2
    (record,) = [r for r in caplog.records if r.name == "tasks_app.services.refresh"]
    assert record.getMessage() == (
        f"Refresh of claim {claim.id} stopped (the database is unavailable: OperationalError: "
        "terminating connection due to administrator command); released 2 tasks."
    )


def test_a_retry_the_broker_cannot_take_gives_the_claim_back(monkeypatch):
    tasks = make_due_tasks(2)
    (claim,) = claims.refresh_claim()
    service, attempts = _failing(1, BrokerError("Error 111 connecting to 127.0.0.1:6379."))
    monkeypatch.setattr(celery_tasks, "refresh_group_service", service)

    def no_broker(*args, **kwargs):
        raise Reject(BrokerError("the broker is down too"), requeue=False)

    monkeypatch.setattr(celery_tasks.refresh_group, "retry", no_broker)
    celery_tasks.refresh_group.apply(args=[str(claim.id)])

    assert attempts == [False]
    assert _held_until(tasks) == {(None, None)}


def test_if_the_database_is_still_down_the_lease_runs_out(monkeypatch, caplog):
    tasks = make_due_tasks(1)
    (claim,) = claims.refresh_claim()

    def down(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(refresh, "claim_release", down)
    with caplog.at_level(logging.WARNING):
        refresh.refresh_group_give_back(claim_id=claim.id, error=OperationalError("gone"))
    ((_, held),) = _held_until(tasks)
    assert held == claim.id
    assert "its lease runs out instead (OperationalError: connection refused)" in caplog.text


def test_a_tick_during_an_outage_is_one_line(monkeypatch, caplog):
    def down(**kwargs):
        raise OperationalError("connection refused\nIs the server running?")

    monkeypatch.setattr(celery_tasks, "refresh_tick_service", down)
    with caplog.at_level(logging.WARNING):
        celery_tasks.refresh_tick.apply()
    (record,) = [r for r in caplog.records if r.name == "tasks_app.tasks"]
    assert record.getMessage() == (
        "Refresh tick skipped: the database is unavailable (OperationalError: connection refused)."
    )
    assert record.exc_info is None
