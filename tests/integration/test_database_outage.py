"""A database outage with real processes (issue 25 §2, items 1 and 4): the test's
PostgreSQL database refuses connections and loses those it had (tests/helpers.py,
database_outage), then comes back.

- A Celery worker whose refresh fails on the database retries it with back-off, renewing
  its lease, so the group is refreshed soon after the database returns rather than when
  the lease (six minutes by default) runs out; one AWS call per attempt, never two at once.
- gunicorn answers 503 with Retry-After (JSON under /api/, a page elsewhere) and one log
  line per request, no traceback; /healthz still answers and /readyz names the database.
"""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import psycopg
import pytest
from django.db import connection
from django.test import Client

from tasks_app.lib.outages import RETRY_AFTER_SECONDS, RETRY_DELAY_MAX
from tasks_app.models import Credential, Role, TaskConfig, TaskRun
from tests.factories import api_token, make_connector, make_due_tasks, make_served_task, make_team
from tests.helpers import (
    ROOT,
    beat_process,
    database_outage,
    database_url,
    free_port,
    http_get,
    portal_env,
    require,
    wait_for,
    web_process,
    worker_process,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _require_postgresql():
    require(
        connection.vendor == "postgresql",
        "this test takes the PostgreSQL test database down (ALLOW_CONNECTIONS, "
        "pg_terminate_backend); set DATABASE_URL=postgres://…",
    )


def _waiting_for_the_credentials_table(monitor) -> bool:
    row = monitor.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND query ILIKE '%%tasks_app_credential%%'"
    ).fetchone()
    return row[0] > 0


def _served(tasks) -> int:
    return TaskConfig.objects.filter(
        pk__in=[t.pk for t in tasks], credential__isnull=False
    ).count()


@pytest.mark.redis
def test_a_refresh_cut_off_by_a_database_outage_is_retried_once_it_returns(
    redis_url, moto_server, ecr_calls, tmp_path
):
    _require_postgresql()
    tasks = make_due_tasks(3)  # one credential group
    env = portal_env(
        tmp_path,
        CELERY_BROKER_URL=redis_url,
        ECRPORTAL_AWS_ENDPOINT_URL=moto_server,
        ECRPORTAL_REFRESH_TICK="1",
        # The default lease (six minutes): without the fix the group waits that long.
    )
    # Hold the worker between AWS's answer and storing it, so that the outage falls inside
    # its refresh, as it did for the soak's 22 refreshes.
    blocker = psycopg.connect(database_url())
    blocker.execute("LOCK TABLE tasks_app_credential IN EXCLUSIVE MODE")
    monitor = psycopg.connect(database_url(), autocommit=True)
    worker = worker_process(env, tmp_path).start()
    beat = beat_process(env, tmp_path).start()
    try:
        wait_for(
            lambda: ecr_calls["n"] == 1 and _waiting_for_the_credentials_table(monitor),
            timeout=90,
            what="the worker to have AWS's answer and wait to store it",
        )
        leased = TaskConfig.objects.get(pk=tasks[0].pk).lease_until
        seen = len(worker.output())
        with database_outage():  # kills the worker's, the blocker's, the monitor's backends
            # The refresh fails, and the database stays down while it is retried and beat
            # ticks (each fails on the database too).
            wait_for(
                lambda: worker.output()[seen:].count("OperationalError") >= 3,
                timeout=60,
                what="the worker to fail on the database three times",
            )
            assert _served(tasks) == 0
        returned = time.monotonic()
        wait_for(
            lambda: _served(tasks) == 3,
            timeout=60,
            what="the group to be refreshed within a minute of the database's return",
        )
        took = time.monotonic() - returned
        print(f"refreshed {took:.1f} s after the database returned (lease: 360 s)")
    finally:
        beat.stop()
        worker.stop()
        blocker.close()
        monitor.close()

    log = worker.output()
    assert "Retry in" in log
    assert took < RETRY_DELAY_MAX + 15
    # The refresh cut off, then its retry: no third call, none at once.
    assert ecr_calls["n"] == 2
    assert Credential.objects.count() == 1
    for task in TaskConfig.objects.filter(pk__in=[t.pk for t in tasks]):
        assert task.status == "ok"
        assert (task.lease_until, task.claim) == (None, None)
        # The run the outage cut off is closed by the retry, not left "running".
        runs = TaskRun.objects.filter(task=task).order_by("started")
        assert list(runs.values_list("outcome", "error_class")) == [
            ("failed", "Interrupted"),
            ("succeeded", ""),
        ]
    assert leased is not None


def _request(url: str, token: str = "", cookie: str = "") -> tuple[int, dict, str]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = cookie
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def test_gunicorn_answers_503_with_retry_after_while_the_database_is_down(tmp_path):
    _require_postgresql()
    team = make_team("Platform", alice=Role.EDITOR)
    plan, _, task, _ = make_served_task(team, make_connector(team))
    token = api_token(plan)
    browser = Client()
    browser.force_login(team.members.get())
    cookie = f"sessionid={browser.cookies['sessionid'].value}"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    api = f"{base}/api/v1/tasks/{task.pk}/variables"
    # No API cache: every request reads its token from the database (with a cache, the
    # tokens and answers a process holds are served through an outage until they expire).
    env = portal_env(
        tmp_path,
        ECRPORTAL_STATIC_ROOT=str(tmp_path / "static"),
        ECRPORTAL_API_CACHE_SECONDS="0",
    )
    collect = [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"]
    subprocess.run(collect, cwd=ROOT, env=env, check=True, timeout=120)
    web = web_process(env, tmp_path, port).start()
    try:
        wait_for(lambda: http_get(f"{base}/healthz")[0] == 200, timeout=30, what="gunicorn")
        assert _request(api, token)[0] == 200  # and the web worker keeps its connection
        assert _request(f"{base}/", cookie=cookie)[0] == 200
        seen = len(web.output())

        with database_outage():
            status, headers, body = _request(api, token)
            assert status == 503, body
            assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            assert headers["Content-Type"] == "application/json"
            assert json.loads(body) == {
                "error": "unavailable",
                "detail": "The portal cannot reach the database right now; "
                f"try again in {RETRY_AFTER_SECONDS} seconds.",
            }
            status, headers, page = _request(f"{base}/", cookie=cookie)
            assert status == 503
            assert headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
            assert headers["Content-Type"].startswith("text/html")
            assert "The portal cannot reach the database right now" in page
            # The probes still say what is down.
            assert http_get(f"{base}/healthz")[0] == 200
            status, readyz = http_get(f"{base}/readyz")
            assert status == 503
            assert json.loads(readyz)["checks"]["database"]["ok"] is False

        assert _request(api, token)[0] == 200  # healed, without a restart
    finally:
        web.stop()

    log = web.output()[seen:]
    assert "Traceback" not in log
    # One line for each of the two requests (/readyz's own 503 is logged as before).
    lines = [line for line in log.splitlines() if "Service Unavailable: /" in line]
    lines = [line for line in lines if "/readyz" not in line]
    assert len(lines) == 2, log
    assert all("the database is unavailable: OperationalError" in line for line in lines)
    assert " 500 " not in log
    assert "Internal Server Error" not in log
