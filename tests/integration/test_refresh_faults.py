"""Scheduled refresh under faults, with real processes (SPEC §7): a worker killed
between AWS's answer and the commit, and Redis restarted while beat and a worker run."""

import shutil
import signal
import time
from datetime import timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone

from tasks_app.models import Credential, TaskConfig, TaskRun
from tasks_app.services.run_results import runs_interrupted_close
from tests.factories import generated, give_credential, make_due_tasks
from tests.helpers import (
    Process,
    beat_process,
    database_url,
    free_port,
    portal_env,
    require,
    wait_for,
    worker_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _waiting_for_the_credentials_table(monitor) -> bool:
    row = monitor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query ILIKE '%%tasks_app_credential%%'"
    ).fetchone()
    return row[0] > 0


def _served(tasks) -> int:
    """How many of these tasks have fetched credentials."""
    return TaskConfig.objects.filter(
        pk__in=[t.pk for t in tasks], credential__isnull=False
    ).count()


def _rows_free(monitor, tasks) -> bool:
    """No other transaction holds these task rows (the killed worker's has ended)."""
    try:
        with monitor.transaction():
            monitor.execute(
                "SELECT id FROM tasks_app_taskconfig WHERE id = ANY(%s) FOR UPDATE NOWAIT",
                [[t.id for t in tasks]],
            )
    except psycopg.errors.LockNotAvailable:
        return False
    return True


def test_a_worker_killed_between_the_aws_answer_and_the_commit_is_redone(
    redis_url, moto_server, ecr_calls, tmp_path
):
    require(
        connection.vendor == "postgresql",
        "this test holds a worker between AWS's answer and its commit with a PostgreSQL "
        "table lock; set DATABASE_URL=postgres://…",
    )
    tasks = make_due_tasks(3)
    env = portal_env(
        tmp_path,
        CELERY_BROKER_URL=redis_url,
        ECRPORTAL_AWS_ENDPOINT_URL=moto_server,
        ECRPORTAL_REFRESH_TICK="1",
        ECRPORTAL_REFRESH_LEASE="30",
    )
    # Readers may read the variables; no one may write them until this transaction ends.
    blocker = psycopg.connect(database_url())
    blocker.execute("LOCK TABLE tasks_app_credential IN EXCLUSIVE MODE")
    monitor = psycopg.connect(database_url(), autocommit=True)
    worker = worker_process(env, tmp_path, name="w1").start()
    beat = beat_process(env, tmp_path).start()
    second = None
    try:
        wait_for(
            lambda: ecr_calls["n"] == 1 and _waiting_for_the_credentials_table(monitor),
            timeout=90,
            what="the worker to have AWS's answer and wait to store the credential",
        )
        worker.stop(signal.SIGKILL)
        blocker.rollback()  # the killed worker's transaction ends without a commit
        wait_for(lambda: _rows_free(monitor, tasks), timeout=30, what="its transaction to end")

        # Nothing of the lost refresh was written: no credential, no new expiry.
        assert not Credential.objects.exists()
        assert set(TaskConfig.objects.values_list("credential__expires_at", flat=True)) == {None}
        assert set(TaskRun.objects.values_list("outcome", flat=True)) == {"running"}

        # Nobody steps in: the lease (30 s) runs out and beat claims the tasks again.
        killed_at = time.monotonic()
        second = worker_process(env, tmp_path, name="w2").start()
        wait_for(
            lambda: _served(tasks) == 3,
            timeout=120,
            what="the refresh to be redone",
        )
        print(f"redone {time.monotonic() - killed_at:.1f} s after the kill (lease 30 s)")
    finally:
        beat.stop()
        for process in (worker, second):
            if process is not None:
                process.stop()
        blocker.close()
        monitor.close()

    assert ecr_calls["n"] == 2
    for task in tasks:
        task.refresh_from_db()
        assert task.status == "ok"
        assert task.lease_until is None
        good = TaskRun.objects.get(task=task, outcome="succeeded")
        # The variables come from the one refresh that finished, none from the lost one.
        assert task.credential.request_id == good.aws_request_id
        assert len(generated(task)) == 7
    assert Credential.objects.count() == 1

    # Housekeeping closes the lost runs once no worker can still be running them.
    assert runs_interrupted_close() == 0
    assert runs_interrupted_close(at=timezone.now() + timedelta(hours=1)) == 3
    lost = TaskRun.objects.filter(outcome="failed")
    assert set(lost.values_list("error_class", flat=True)) == {"Interrupted"}


def _redis_server(port: int, tmp_path) -> Process:
    args = [
        shutil.which("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    server = Process("redis", args, {}, tmp_path / f"redis-{time.monotonic_ns()}.log").start()
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=1)
    wait_for(lambda: _pings(client), timeout=15, what="redis-server to start")
    return server


def _pings(client) -> bool:
    import redis

    try:
        return client.ping()
    except redis.RedisError:
        return False


def test_refreshes_resume_after_redis_restarts(moto_server, ecr_calls, tmp_path):
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    tasks = make_due_tasks(2, due=False)
    first, second = tasks
    TaskConfig.objects.filter(pk=second.pk).update(region="us-east-1")  # another group
    port = free_port()
    redis_server = _redis_server(port, tmp_path)
    env = portal_env(
        tmp_path,
        CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0",
        ECRPORTAL_AWS_ENDPOINT_URL=moto_server,
        ECRPORTAL_REFRESH_TICK="1",
    )
    worker = worker_process(env, tmp_path).start()
    beat = beat_process(env, tmp_path).start()
    try:
        TaskConfig.objects.filter(pk=first.pk).update(refresh_due_at=timezone.now())
        wait_for(lambda: _served([first]) == 1, timeout=90, what="a refresh before the restart")

        worker_seen, beat_seen = len(worker.output()), len(beat.output())
        redis_server.stop(signal.SIGKILL)  # everything in it is lost
        TaskConfig.objects.filter(pk=second.pk).update(refresh_due_at=timezone.now())
        # Beat and the worker notice, and keep trying: beat fails to send two ticks.
        wait_for(
            lambda: (
                "Cannot connect to redis" in worker.output()[worker_seen:]
                and beat.output()[beat_seen:].count("Couldn't apply scheduled task") >= 2
            ),
            timeout=60,
            what="beat and the worker to report that Redis is gone",
        )
        assert _served([second]) == 0

        redis_server = _redis_server(port, tmp_path)
        restarted = time.monotonic()
        wait_for(
            lambda: _served([second]) == 1,
            timeout=60,
            what="refreshes to resume within 60 s of Redis's restart",
        )
        print(f"refreshes resumed {time.monotonic() - restarted:.1f} s after Redis restarted")
    finally:
        beat.stop()
        worker.stop()
        redis_server.stop()
    second.refresh_from_db()
    assert second.status == "ok"


def test_a_failing_refresh_notifies_the_team_webhook_from_the_worker(
    redis_url, webhook_receiver, tmp_path
):
    from tasks_app.models import Team

    (task,) = make_due_tasks(1, due=False)
    Team.objects.update(webhook_url=webhook_receiver.url, notify_email=False)
    team = Team.objects.get()
    team.webhook_secret = "whsec-worker-0123456789"
    team.save()
    # A good token from earlier, due for refresh; AWS is now unreachable.
    give_credential(task, expires_in=timedelta(hours=5))
    TaskConfig.objects.filter(pk=task.pk).update(
        last_run_ok=True,
        recorded_status="ok",
        refresh_due_at=timezone.now(),
    )
    env = portal_env(
        tmp_path,
        CELERY_BROKER_URL=redis_url,
        ECRPORTAL_AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}",
        ECRPORTAL_AWS_MAX_ATTEMPTS="1",
        ECRPORTAL_REFRESH_TICK="1",
        ECRPORTAL_WEBHOOK_ALLOW_PRIVATE="1",
        ECRPORTAL_WEBHOOK_CA_BUNDLE=webhook_receiver.ca_bundle,
    )
    worker = worker_process(env, tmp_path).start()
    beat = beat_process(env, tmp_path).start()
    try:
        wait_for(
            lambda: webhook_receiver.received, timeout=90, what="the worker's webhook delivery"
        )
    finally:
        beat.stop()
        worker.stop()
    payload = webhook_receiver.json()
    assert (payload["previous"], payload["status"], payload["kind"]) == (
        "ok",
        "failing",
        "failing",
    )
    assert "Could not connect" in payload["error"]
    assert len(webhook_receiver.received) == 1
