"""Scheduled refresh with real processes: Celery beat and a worker over Redis, moto over HTTP."""

import re

import pytest
from django.utils import timezone

from tasks_app.models import Job, Plan, TaskConfig, TaskRun
from tests.factories import make_connector, make_due_tasks, make_team
from tests.helpers import beat_process, portal_env, wait_for, worker_process

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def test_beat_and_a_worker_refresh_due_tasks_and_leave_the_others(
    redis_url, moto_server, ecr_calls, tmp_path
):
    team = make_team("Platform")
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    jobs = [Job.objects.create(plan=plan, key=f"JOB{i}", name="Job") for i in range(3)]
    due = [
        TaskConfig.objects.create(job=job, region="eu-west-1", connector=connector)
        for job in jobs[:2]
    ]
    for task in due:
        TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at="2000-01-01T00:00:00Z")
    # Another credential group (region): not due, so not refreshed.
    later = TaskConfig.objects.create(job=jobs[2], region="us-east-1", connector=connector)
    TaskConfig.objects.filter(pk=later.pk).update(refresh_due_at="2999-01-01T00:00:00Z")

    env = portal_env(
        tmp_path,
        CELERY_BROKER_URL=redis_url,
        ECRPORTAL_AWS_ENDPOINT_URL=moto_server,
        ECRPORTAL_REFRESH_TICK="2",
    )
    worker = worker_process(env, tmp_path).start()
    beat = beat_process(env, tmp_path).start()
    try:
        wait_for(
            lambda: (
                TaskConfig.objects.filter(pk__in=[t.pk for t in due])
                .exclude(credential=None)
                .count()
                == 2
            ),
            timeout=90,
            what="the worker to store both due tasks' credential",
        )
    finally:
        beat.stop()
        worker.stop()

    runs = TaskRun.objects.filter(trigger="schedule")
    assert sorted(runs.values_list("task", flat=True)) == sorted(t.id for t in due)
    assert set(runs.values_list("outcome", flat=True)) == {"succeeded"}
    later.refresh_from_db()
    assert later.credential is None
    assert ecr_calls["n"] == 1  # both tasks share a connector and a region
    for task in due:
        task.refresh_from_db()
        assert task.status == "ok"
        assert task.failures == 0
        assert task.lease_until is None
        hours_left = (task.expires_at - timezone.now()).total_seconds() / 3600
        assert 11.9 < hours_left <= 12
        # Next refresh: 6 hours (ECRPORTAL_MIN_REMAINING) plus jitter before expiry.
        before_expiry = (task.expires_at - task.refresh_due_at).total_seconds()
        assert 6 * 3600 <= before_expiry <= 6 * 3600 + 300
    assert "Task tasks_app.tasks.refresh_group" in worker.output()
    assert "Sending due task refresh-tick" in beat.output()


def _ticks_sent(beat) -> int:
    return beat.output().count("Sending due task refresh-tick")


def _ticks_done(workers) -> int:
    return sum(
        len(re.findall(r"Task tasks_app\.tasks\.refresh_tick\[[^]]+\] succeeded", w.output()))
        for w in workers
    )


def test_two_beats_at_once_refresh_every_task_once(redis_url, moto_server, tmp_path):
    tasks = make_due_tasks(10)

    env = portal_env(
        tmp_path,
        CELERY_BROKER_URL=redis_url,
        ECRPORTAL_AWS_ENDPOINT_URL=moto_server,
        ECRPORTAL_REFRESH_TICK="1",
        # moto's tokens arrive expired: keep their retry out of this test's window.
        ECRPORTAL_BACKOFF_BASE="3600",
    )
    for folder in ("b1", "b2"):
        (tmp_path / folder).mkdir()
    processes = [
        worker_process(env, tmp_path, name="w1").start(),
        worker_process(env, tmp_path, name="w2").start(),
        beat_process(env, tmp_path / "b1").start(),
        beat_process(env, tmp_path / "b2").start(),
    ]
    try:
        wait_for(
            lambda: (
                TaskConfig.objects.filter(pk__in=[t.pk for t in tasks])
                .exclude(credential=None)
                .count()
                == 10
            ),
            timeout=90,
            what="every task's variables",
        )
        # Three more ticks of each beat, taken by the workers: nothing is refreshed again.
        workers, beats = processes[:2], processes[2:]
        sent, done = [_ticks_sent(beat) for beat in beats], _ticks_done(workers)
        wait_for(
            lambda: (
                all(_ticks_sent(beat) >= n + 3 for beat, n in zip(beats, sent, strict=True))
                and _ticks_done(workers) >= done + 6
            ),
            timeout=60,
            what="three more ticks of each beat to be done by the workers",
        )
    finally:
        for process in processes:
            process.stop()

    runs = TaskRun.objects.filter(trigger="schedule")
    assert sorted(runs.values_list("task", flat=True)) == sorted(t.id for t in tasks)
