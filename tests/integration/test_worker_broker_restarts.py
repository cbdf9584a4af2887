"""The portal keeps consuming while its Redis restarts, again and again, under load (issue
25 §2.5), with the worker run as `make run` runs it: the Procfile's line, under
devtools/serve.py.

Two failures, both reproduced here (kombu 5.7.0, celery 5.7.0, redis-py 8.1.0), when Redis
goes away again just after the consumer reconnected:

- With late-acknowledged messages in hand, the consumer closes its connection; closing the
  channel restores the unacknowledged messages through a transport whose client is already
  gone, and kombu's Redis transport raises "AttributeError: 'NoneType' object has no
  attribute 'hostname'" in `Channel._connparams`. It is not one of the connection errors
  Celery ignores there: the worker stops with "Unrecoverable error". Nothing is lost (Redis
  keeps the messages unacknowledged until the visibility timeout; the claims' leases let a
  tick take the groups again), but no worker is left: so every way of running the portal
  starts a worker that ends again (`make run`'s supervisor, Compose's `restart:
  unless-stopped`).
- Stopping the gossip step closes its consumer's channel on a connection that is None
  ("'NoneType' object has no attribute 'connection_errors'"): the worker reconnects, says
  so, and consumes nothing more, for good. The portal uses none of gossip, mingle or
  heartbeat, so its workers run without them (the Procfile, docker-compose.yml).

A third is not fixed: after "Couldn't ack …, reason: ConnectionError" and another loss, a
worker reconnected and consumed nothing more (seen in 1 run of about 8 under load). So this
is a soak, run by hand (ECRPORTAL_SOAK=1), not part of `make test`, until it passes always.

The Redis here is the test's own, on a free port: restarting it disturbs nobody else."""

import json
import os
import shutil
import signal
import sys
import uuid
from pathlib import Path

import pytest
from honcho.environ import parse_procfile

from tests.helpers import (
    ROOT,
    Process,
    free_port,
    http_get,
    portal_env,
    require,
    supervisor_process,
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
    """The Procfile's worker under make run's supervisor."""
    command = parse_procfile((ROOT / "Procfile").read_text()).processes["worker"]
    bin_dir = str(Path(sys.executable).parent)
    env = {**env, "PATH": f"{bin_dir}:{env.get('PATH', '')}"}
    return supervisor_process(f"worker: {command}\n", env, tmp_path)


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


@pytest.mark.skipif(
    not os.environ.get("ECRPORTAL_SOAK"),
    reason="a soak that still finds a worker that stops consuming (issue 25 §2.5): "
    "ECRPORTAL_SOAK=1 runs it",
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
            try:
                wait_for(
                    lambda: _ready(web_port),
                    timeout=90,
                    what=f"the worker to consume again after restart {round_}",
                )
            except AssertionError as e:
                raise AssertionError(f"{e}\n{worker.output()[-6000:]}") from None
            assert worker.running(), worker.output()[-3000:]
        crashes = worker.output().count("Unrecoverable error")
        print(
            f"{RESTARTS} Redis restarts: the worker ended {crashes} time(s) and was started again"
        )
    finally:
        worker.stop()
        web.stop()
        redis.stop()
