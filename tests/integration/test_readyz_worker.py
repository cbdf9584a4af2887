"""/readyz against real processes: gunicorn, a Celery worker and Redis."""

import json
import signal
import time

import pytest

from tests.helpers import free_port, http_get, portal_env, wait_for, web_process, worker_process

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
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
            timeout=30,
            what="gunicorn to serve /healthz",
        )
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
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
            timeout=30,
            what="gunicorn to serve /healthz",
        )
        started = time.monotonic()
        status, body = _readyz(port)
        assert status == 503
        assert body["checks"]["database"]["ok"] is True
        assert body["checks"]["worker"]["detail"] == "broker unreachable (OperationalError)"
        assert time.monotonic() - started < 10
    finally:
        web.stop()
