"""/metrics across real processes (issue 25): a live gunicorn's answer sums what its
worker, a worker that was killed, and another process of the machine counted; gunicorn
clears the web's stale files when it starts, and leaves the other components' alone; beat's
tick, run by a Celery worker, shows in the web's answer. Where they share no folder
(Kubernetes' pods), the worker and beat answer for themselves on ECRPORTAL_METRICS_PORT."""

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import (
    ROOT,
    beat_process,
    free_port,
    http_get,
    metric_samples,
    portal_env,
    wait_for,
    web_process,
    web_serving,
    worker_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

TOKEN = "scrape-token-for-the-integration-test-0001"
FAILED = "ecrportal_authentication_failures_total"
# The gauges read from the database when web's /metrics is scraped (services/metrics.py).
DATABASE_GAUGES = ("ecrportal_tasks", "ecrportal_credential", "ecrportal_due_unclaimed")


def _count(port: int, kind: str) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=15) as answer:
        samples = metric_samples(answer.read())
    return samples.get((FAILED, (("kind", kind),)), 0.0)


def _bad_token_requests(port: int, n: int) -> None:
    for _ in range(n):
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/docker-config",
            headers={"Authorization": "Bearer ecrp_wrong"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=15)
        assert refused.value.code == 401


def _count_in_another_process(env: dict, role: str, n: int) -> None:
    code = (
        "import django, os; django.setup()\n"
        "from tasks_app.lib import metrics\n"
        f"metrics.role_set({role!r})\n"
        f"for _ in range({n}): metrics.authentication_failed('password')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, timeout=60)


def _worker_pid(master_pid: int) -> int | None:
    children = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(master_pid)], capture_output=True, text=True
    ).stdout.split()
    return int(children[0]) if children else None


def test_a_scrape_sums_every_process_and_survives_a_killed_worker(tmp_path):
    env = portal_env(tmp_path, ECRPORTAL_METRICS_TOKEN=TOKEN)
    metrics_dir = tmp_path / "metrics"
    # A web file left by a gunicorn that died before: cleared when gunicorn starts. A
    # worker's files (another component) stay.
    _count_in_another_process(env, "web", 5)
    _count_in_another_process(env, "worker", 2)
    assert any("_web-" in p.name for p in metrics_dir.iterdir())

    port = free_port()
    web = web_process(env, tmp_path, port).start()
    try:
        web_serving(port)
        assert _count(port, "password") == 2  # the stale web files went, the worker's stayed
        _bad_token_requests(port, 4)
        _count_in_another_process(env, "other", 3)
        assert _count(port, "token") == 4
        assert _count(port, "password") == 5

        # Kill gunicorn's worker: its counts stay; the master starts another.
        first = _worker_pid(web.popen.pid)
        assert first is not None
        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: _worker_pid(web.popen.pid) not in (None, first),
            timeout=30,
            what="gunicorn to start another worker",
        )
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
            timeout=30,
            what="the new worker to serve",
        )
        _bad_token_requests(port, 2)
        assert _count(port, "token") == 6
        files = {p.name.split("_")[-1].split("-")[0] for p in metrics_dir.glob("*.db")}
        assert {"web", "worker", "other"} <= files
    finally:
        web.stop()


def _scrape(port: int) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=15) as answer:
        return metric_samples(answer.read())


@pytest.mark.redis
def test_beats_tick_run_by_a_worker_shows_in_the_webs_answer(redis_url, tmp_path):
    env = portal_env(
        tmp_path,
        ECRPORTAL_METRICS_TOKEN=TOKEN,
        CELERY_BROKER_URL=redis_url,
        ECRPORTAL_REFRESH_TICK="2",
    )
    port = free_port()
    processes = [
        web_process(env, tmp_path, port).start(),
        worker_process(env, tmp_path).start(),
        beat_process(env, tmp_path).start(),
    ]
    tick = ("ecrportal_beat_last_tick_timestamp_seconds", ())
    try:
        web_serving(port)
        started = time.time()
        samples = wait_for(
            lambda: (found := _scrape(port)).get(tick, 0) > started - 5 and found,
            timeout=60,
            what="a tick's time in /metrics",
        )
        assert samples[tick] <= time.time()
        roles = {p.name.split("_")[-1].split("-")[0] for p in (tmp_path / "metrics").glob("*.db")}
        assert "worker" in roles
    finally:
        for process in processes:
            process.stop()


def _scrape_listener(port: int) -> dict | None:
    """A Celery process's own /metrics (ECRPORTAL_METRICS_PORT); None while none answers."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as answer:
            return metric_samples(answer.read())
    except (urllib.error.URLError, ConnectionError):
        return None


@pytest.mark.redis
def test_worker_and_beat_pods_serve_their_own_metrics(redis_url, tmp_path):
    """Kubernetes: web, worker and beat each in a pod of their own, sharing no metrics
    folder. The worker and beat serve their own folder on ECRPORTAL_METRICS_PORT, behind
    the token; the worker's answer has the tick it ran, and none of the database's gauges
    (web alone adds those); web's answer has the gauges and not the worker's counts."""
    web_port, worker_port, beat_port = free_port(), free_port(), free_port()
    common = {
        "ECRPORTAL_METRICS_TOKEN": TOKEN,
        "CELERY_BROKER_URL": redis_url,
        "ECRPORTAL_REFRESH_TICK": "2",
    }

    def pod(name: str, **settings: str) -> dict:
        folder = tmp_path / name
        folder.mkdir()
        return portal_env(folder, **common, **settings)

    processes = [
        web_process(pod("web"), tmp_path, web_port).start(),
        worker_process(pod("worker", ECRPORTAL_METRICS_PORT=str(worker_port)), tmp_path).start(),
        beat_process(pod("beat", ECRPORTAL_METRICS_PORT=str(beat_port)), tmp_path).start(),
    ]
    tick = ("ecrportal_beat_last_tick_timestamp_seconds", ())
    try:
        started = time.time()
        worker = wait_for(
            lambda: (
                (found := _scrape_listener(worker_port))
                and found.get(tick, 0) > started - 5
                and found
            ),
            timeout=60,
            what="the worker's own /metrics to show a tick it ran",
        )
        assert not {name for name, _ in worker if name.startswith(DATABASE_GAUGES)}
        # Beat answers too (it counts nothing itself), behind the same token.
        assert wait_for(lambda: _scrape_listener(beat_port) is not None, timeout=30, what="beat")
        status, _ = http_get(f"http://127.0.0.1:{beat_port}/metrics")
        assert status == 401
        web_serving(web_port)
        web = _scrape(web_port)
        assert tick not in web  # the worker's count is in its own pod's folder only
        assert {name for name, _ in web if name.startswith(DATABASE_GAUGES)}
        assert not any((tmp_path / "web" / "metrics").glob("*_worker-*.db"))
    finally:
        for process in processes:
            process.stop()
