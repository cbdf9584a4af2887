"""`make demo`: the portal against a local AWS stand-in, refreshing a seeded task."""

import re
import signal
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from devtools.newcomer import alive
from tests.helpers import Process, child_environ, free_port, http_get, wait_for

pytestmark = pytest.mark.integration


def _demo_task(db_path, namespace="custom.aws"):
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute(
                "SELECT t.last_run_ok, c.expires_at, c.proxy_endpoint FROM tasks_app_taskconfig t "
                "LEFT JOIN tasks_app_credential c ON c.id = t.credential_id WHERE t.namespace = ?",
                [namespace],
            ).fetchone()
    except sqlite3.Error:
        return None


def _failing_task(db_path):
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return db.execute(
                "SELECT r.error_class, r.error_message FROM tasks_app_taskrun r "
                "JOIN tasks_app_taskconfig t ON t.id = r.task_id WHERE t.namespace = ? "
                "AND r.outcome = 'failed'",
                ["custom.failing"],
            ).fetchone()
    except sqlite3.Error:
        return None


def test_make_demo_refreshes_the_seeded_task_with_a_realistic_expiry(tmp_path):
    port = free_port()
    env = child_environ(portal_settings=False)
    env.update(
        ECRPORTAL_DATA_DIR=str(tmp_path / "data"),
        ECRPORTAL_BIND=f"127.0.0.1:{port}",
        ECRPORTAL_SITE_URL=f"http://127.0.0.1:{port}",
        ECRPORTAL_DEMO_AWS_PORT=str(free_port()),
        ECRPORTAL_REFRESH_TICK="2",
    )
    demo = Process(
        "make-demo", ["make", "--no-print-directory", "demo"], env, tmp_path / "demo.log"
    )
    demo.start()
    try:
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/login/")[0] == 200,
            timeout=90,
            what="make demo to serve the login page",
        )
        row = wait_for(
            lambda: (r := _demo_task(tmp_path / "data" / "db.sqlite3")) and r[0] == 1 and r,
            timeout=60,
            what="the scheduler to fetch the demo task's credentials",
        )
        public = wait_for(
            lambda: (
                (r := _demo_task(tmp_path / "data" / "db.sqlite3", "custom.public"))
                and r[0] == 1
                and r
            ),
            timeout=60,
            what="the scheduler to fetch the ECR Public demo task's credentials",
        )
        failed = wait_for(
            lambda: _failing_task(tmp_path / "data" / "db.sqlite3"),
            timeout=60,
            what="the failing demo task's run",
        )
        output = demo.output()
        assert "Created the demo: team Demo, connector demo-aws, plan DEMO-BUILD" in output
        assert (
            "The connector demo-aws-wrong-secret and the task custom.failing of plan "
            "DEMO-FAILURE" in output
        )
        assert re.search(r"One-time password: +\S{16}", output)
        assert "ECR tokens last 12 h; it knows the access key AKIAIOSFODNN7EXAMPLE." in output
        pids = [int(p) for p in re.findall(r"\| \w+\.1 started \(pid=(\d+)\)", output)]
        assert len(pids) == 4
    finally:
        demo.signal_group(signal.SIGINT)
        try:
            wait_for(lambda: not demo.running(), timeout=40, what="make demo to exit")
        finally:
            demo.stop(signal.SIGKILL)

    for pid in pids:
        wait_for(lambda pid=pid: not alive(pid), timeout=10, what=f"process group {pid} to end")
    assert failed[0] == "SignatureDoesNotMatch"
    assert "The secret access key does not belong to this access key ID." in failed[1]
    for fetched in (row, public):
        expires = datetime.fromisoformat(fetched[1]).replace(tzinfo=UTC)
        left = expires - datetime.now(UTC)
        assert timedelta(hours=11, minutes=58) < left <= timedelta(hours=12)
    assert public[2] == "https://public.ecr.aws"
