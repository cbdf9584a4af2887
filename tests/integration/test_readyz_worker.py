"""/readyz against real processes: gunicorn, a Celery worker and Redis."""

import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import (
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
        assert body["checks"]["worker"]["detail"].startswith("worker worker@")

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
        status, body = _readyz(port)
        assert status == 503, body
        assert body["checks"]["worker"]["detail"] == "no worker answered within 3 s"
    finally:
        worker.stop()
        web.stop()
        broker.close()


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
