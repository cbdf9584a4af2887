"""A worker started as `make run` starts it (the Procfile's line) keeps consuming while its
Redis restarts, again and again, under load (issue 25 §2.5): a soak once saw the worker's
consumer stop for good with "Unrecoverable error: AttributeError('NoneType' object has no
attribute 'hostname')" from kombu's Redis transport, closing the broadcast queues of the
worker's gossip, mingle and heartbeat steps on a dead connection.

The Redis here is the test's own, on a free port: restarting it disturbs nobody else."""

import json
import shutil
import signal
import uuid

import pytest
from honcho.environ import parse_procfile

from tests.helpers import (
    ROOT,
    Process,
    free_port,
    http_get,
    portal_env,
    require,
    wait_for,
    web_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RESTARTS = 10
LOAD = 100  # canaries queued before each restart: the worker is busy when Redis goes


def _redis(port: int, tmp_path, round_: int) -> Process:
    args = [
        shutil.which("redis-server") or "redis-server",
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    return Process(f"redis-{round_}", args, {}, tmp_path / f"redis-{round_}.log").start()


def _ping(port: int) -> bool:
    import redis

    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _worker(env, tmp_path) -> Process:
    """The worker as the Procfile runs it (its flags are what this test is about)."""
    command = parse_procfile((ROOT / "Procfile").read_text()).processes["worker"]
    bin_dir = str(ROOT / ".venv" / "bin")
    env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"}
    return Process("worker", ["/bin/sh", "-c", f"exec {command}"], env, tmp_path / "worker.log")


def _ready(port: int) -> bool:
    status, body = http_get(f"http://127.0.0.1:{port}/readyz")
    return status == 200 and json.loads(body)["checks"]["worker"]["ok"]


def _load(broker_url: str) -> None:
    from ecrportal.celery import app

    with app.connection_for_write(broker_url) as connection:
        for _ in range(LOAD):
            app.send_task(
                "tasks_app.tasks.canary", args=[str(uuid.uuid4())], connection=connection
            )


def test_a_busy_worker_keeps_consuming_through_ten_redis_restarts(tmp_path):
    require(shutil.which("redis-server") is not None, "redis-server is not installed")
    redis_port, web_port = free_port(), free_port()
    broker_url = f"redis://127.0.0.1:{redis_port}/0"
    redis = _redis(redis_port, tmp_path, 0)
    wait_for(lambda: _ping(redis_port), timeout=20, what="the test's Redis to answer")
    env = portal_env(tmp_path, CELERY_BROKER_URL=broker_url, ECRPORTAL_READYZ_TIMEOUT="5")
    web = web_process(env, tmp_path, web_port).start()
    worker = _worker(env, tmp_path).start()
    try:
        wait_for(lambda: _ready(web_port), timeout=90, what="/readyz with the worker consuming")
        for round_ in range(1, RESTARTS + 1):
            _load(broker_url)
            redis.stop(signal.SIGTERM)
            redis = _redis(redis_port, tmp_path, round_)
            wait_for(lambda: _ping(redis_port), timeout=20, what="Redis to come back")
            # A canary through the new Redis, answered: the worker consumes again.
            wait_for(
                lambda: _ready(web_port),
                timeout=90,
                what=f"the worker to consume again after restart {round_}",
            )
            assert worker.running(), worker.output()[-3000:]
        assert "Unrecoverable error" not in worker.output()
    finally:
        worker.stop()
        web.stop()
        redis.stop()
