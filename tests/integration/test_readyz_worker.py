"""/readyz against real processes: gunicorn, a Celery worker and Redis."""

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import (
    ROOT,
    free_port,
    http_get,
    portal_env,
    wait_for,
    web_process,
    web_serving,
    worker_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _readyz(port):
    status, body = http_get(f"http://127.0.0.1:{port}/readyz")
    return status, json.loads(body)


def _not_ready_without_a_worker(port) -> None:
    """/readyz says 503, no worker having taken the canary (ECRPORTAL_READYZ_TIMEOUT=3)."""
    status, body = _readyz(port)
    assert status == 503, body
    assert body["checks"]["worker"]["detail"] == "no worker answered within 3 s"


@pytest.mark.redis
def test_readyz_follows_a_real_worker_through_redis(redis_url, tmp_path):
    env = portal_env(tmp_path, CELERY_BROKER_URL=redis_url, ECRPORTAL_READYZ_TIMEOUT="3")
    port = free_port()
    web = web_process(env, tmp_path, port).start()
    worker = worker_process(env, tmp_path).start()
    try:
        web_serving(port)
        status, body = wait_for(
            lambda: (r := _readyz(port))[0] == 200 and r,
            timeout=60,
            what="/readyz to report the worker ready",
        )
        assert body["checks"]["worker"]["detail"] == "a worker answered"

        stop_sent = time.monotonic()
        worker.stop(signal.SIGTERM)
        stopped = time.monotonic()
        status, body = _readyz(port)
        answered = time.monotonic()

        assert status == 503, body
        assert body["checks"]["worker"]["detail"] == "no worker answered within 3 s"
        assert answered - stopped < 10
        print(f"worker shutdown {stopped - stop_sent:.1f} s, 503 after {answered - stopped:.1f} s")
    finally:
        worker.stop()
        web.stop()
    assert "Task tasks_app.tasks.canary" in worker.output()


def test_readyz_names_an_unreachable_broker(db, tmp_path):
    # Nothing listens on port 1 of the loopback: the broker cannot be reached.
    env = portal_env(tmp_path, CELERY_BROKER_URL="redis://127.0.0.1:1/0")
    port = free_port()
    web = web_process(env, tmp_path, port).start()
    try:
        web_serving(port)
        started = time.monotonic()
        status, body = _readyz(port)
        assert status == 503
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["worker"]["detail"] == "broker unreachable (OperationalError)"
        assert time.monotonic() - started < 10
    finally:
        web.stop()


@pytest.mark.redis
def test_readyz_stays_ready_while_the_worker_is_busy_with_a_wave(redis_url, tmp_path):
    """The canary has its own queue, which every worker serves: a worker busy with a wave
    of work on the default queue still answers it; a worker that is gone does not."""
    import redis

    from tests.integration.slow_tasks import INCLUDE, queue_sleeps

    env = portal_env(tmp_path, CELERY_BROKER_URL=redis_url, ECRPORTAL_READYZ_TIMEOUT="3")
    port = free_port()
    web = web_process(env, tmp_path, port).start()
    worker = worker_process(env, tmp_path, extra=INCLUDE).start()  # one process
    broker = redis.Redis.from_url(redis_url)
    try:
        web_serving(port)
        wait_for(lambda: _readyz(port)[0] == 200, timeout=60, what="/readyz to say ready")
        # A wave: 60 s of work for the worker's one process, ahead of any canary.
        queue_sleeps(redis_url, count=60, seconds=1)
        wait_for(
            lambda: "Task tests.sleep" in worker.output(), timeout=30, what="the wave to start"
        )
        answers = []
        for _ in range(5):
            started = time.monotonic()
            status, body = _readyz(port)
            answers.append(
                (status, body["checks"]["worker"]["detail"], time.monotonic() - started)
            )
        waiting = broker.llen("celery")
        print("readyz while busy:", [(s, round(t, 1)) for s, _, t in answers], "waiting", waiting)
        assert [status for status, _, _ in answers] == [200] * 5, answers
        assert waiting > 0  # the wave was still being worked through

        worker.stop(signal.SIGTERM)
        _not_ready_without_a_worker(port)
    finally:
        worker.stop()
        web.stop()
        broker.close()


@pytest.mark.redis
def test_readyz_stays_ready_while_every_process_waits_on_a_slow_aws(redis_url, tmp_path):
    """Refreshes fill both processes of a worker, each waiting on an AWS that does not
    answer yet: no process is free for the canary, yet nothing is down. The worker's
    consumer says it is busy in every process, so /readyz says ready; once the worker has
    stopped, nothing answers and /readyz says not ready."""
    from ecrportal.celery import app
    from tasks_app.models import TaskConfig
    from tests.factories import make_due_tasks
    from tests.hostile_aws import HostileAws

    aws = HostileAws()
    aws.hold()
    regions = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2")
    for task, region in zip(make_due_tasks(len(regions)), regions, strict=True):
        TaskConfig.objects.filter(pk=task.pk).update(region=region)  # a group each
    env = portal_env(
        tmp_path,
        CELERY_BROKER_URL=redis_url,
        ECRPORTAL_READYZ_TIMEOUT="3",
        ECRPORTAL_AWS_ENDPOINT_URL=aws.url,
        ECRPORTAL_AWS_READ_TIMEOUT="100",
        ECRPORTAL_AWS_MAX_ATTEMPTS="1",
        AWS_EC2_METADATA_DISABLED="true",
    )
    port = free_port()
    web = web_process(env, tmp_path, port).start()
    worker = worker_process(env, tmp_path, extra=("--concurrency", "2")).start()
    try:
        web_serving(port)
        _status, body = wait_for(
            lambda: (r := _readyz(port))[0] == 200 and r, timeout=60, what="/readyz to say ready"
        )
        assert body["checks"]["worker"]["detail"] == "a worker answered"
        with app.connection_for_write(redis_url) as connection:
            app.send_task("tasks_app.tasks.refresh_tick", connection=connection)
        wait_for(lambda: aws.requests >= 2, timeout=60, what="both processes to wait on AWS")

        answers = [_readyz(port) for _ in range(3)]
        assert [status for status, _ in answers] == [200] * 3, answers
        detail = answers[-1][1]["checks"]["worker"]["detail"]
        assert detail == "every worker busy in tasks: 1 worker, 2 of 2 processes", detail
        assert aws.requests == 2  # still waiting: the answers came while both were busy

        aws.release()
        worker.stop(signal.SIGTERM)
        _not_ready_without_a_worker(port)
    finally:
        aws.close()
        worker.stop()
        web.stop()


@pytest.mark.redis
def test_readyz_is_not_ready_while_a_worker_answers_but_consumes_nothing(redis_url, tmp_path):
    """A worker whose consumer still answers remote control (a ping, how busy it is) but
    takes nothing from the queues, as a worker stuck after a broker restart did: the
    canary proves consumption, so /readyz says not ready."""
    env = portal_env(tmp_path, CELERY_BROKER_URL=redis_url, ECRPORTAL_READYZ_TIMEOUT="3")
    celery = [str(Path(sys.executable).with_name("celery")), "--app", "ecrportal"]

    def control(*args: str) -> str:
        done = subprocess.run(
            [*celery, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    port = free_port()
    web = web_process(env, tmp_path, port).start()
    worker = worker_process(env, tmp_path).start()
    try:
        web_serving(port)
        wait_for(lambda: _readyz(port)[0] == 200, timeout=60, what="/readyz to say ready")
        for queue in ("celery", "quick"):
            assert "no longer consuming" in control("control", "cancel_consumer", queue)
        assert "pong" in control("inspect", "ping")  # as Compose's health check asks
        _not_ready_without_a_worker(port)
    finally:
        worker.stop()
        web.stop()


# Shaped as an API token (models/tokens.py), known to no process: masked by its shape.
PASTED_TOKEN = "ecrp_" + "Sentinel-Pasted-Token-0123456789abcdefghijk"


def test_gunicorn_writes_json_lines_with_the_request_id(db, tmp_path):
    """ECRPORTAL_LOG_FORMAT=json as users run it: gunicorn's own lines and the portal's are
    each one JSON object, and a request's lines carry its ID."""
    env = portal_env(tmp_path, ECRPORTAL_LOG_FORMAT="json")
    port = free_port()
    web = web_process(env, tmp_path, port).start()
    try:
        web_serving(port)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/no-such-thing?token={PASTED_TOKEN}&x=1",
            headers={"X-Request-ID": "probe-0123456789"},
        )
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(request, timeout=10)
        assert answer.value.headers["X-Request-ID"] == "probe-0123456789"
        wait_for(
            lambda: "probe-0123456789" in web.output(),
            timeout=30,
            what="the request's log line",
        )
    finally:
        web.stop()
    lines = [line for line in web.output().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"time", "level", "logger", "message"} <= set(records[0])
    about = [r for r in records if r.get("request_id") == "probe-0123456789"]
    assert about
    assert any(r["logger"] == "django.request" for r in about)
    # An API token pasted into a URL is in no line: the access line names the path alone
    # (and the request ID it answered with), and Django's request object is not written.
    assert PASTED_TOKEN not in web.output()
    (access,) = [
        r for r in records if r["logger"] == "gunicorn.access" and "no-such" in r["message"]
    ]
    assert '"GET /api/v1/no-such-thing HTTP/1.1" 404' in access["message"]
    assert access["message"].endswith(" probe-0123456789")
    assert not [r for r in records if "request" in r]
