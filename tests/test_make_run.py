"""`make run` on the embedded defaults: SQLite and the file-system broker, no servers."""

import json
import os
import re
import signal
import time

import pytest

from tests.helpers import Process, child_environ, free_port, http_get, wait_for

pytestmark = pytest.mark.integration


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_make_run_serves_the_portal_and_stops_everything_on_ctrl_c(tmp_path):
    port = free_port()
    env = child_environ(portal_settings=False)
    env.update(
        ECRPORTAL_DATA_DIR=str(tmp_path / "data"),
        ECRPORTAL_BIND=f"127.0.0.1:{port}",
        ECRPORTAL_SITE_URL=f"http://127.0.0.1:{port}",
    )
    run = Process("make-run", ["make", "--no-print-directory", "run"], env, tmp_path / "run.log")
    started = time.monotonic()
    run.start()
    try:
        wait_for(
            lambda: http_get(f"http://127.0.0.1:{port}/login/")[0] == 200,
            timeout=60,
            what="make run to serve the login page",
        )
        print(f"login page served {time.monotonic() - started:.1f} s after make run")
        output = run.output()
        assert f"ECR Portal: open http://127.0.0.1:{port}/" in output
        assert re.search(r"One-time password: +\S{16}", output)

        # The worker consumes from the file-system broker.
        _, body = wait_for(
            lambda: (r := http_get(f"http://127.0.0.1:{port}/readyz"))[0] == 200 and r,
            timeout=60,
            what="/readyz to see the worker",
        )
        assert json.loads(body)["checks"]["database"]["detail"] == "sqlite answered"
        wait_for(lambda: "beat: Starting" in run.output(), timeout=30, what="beat to start")
        assert (tmp_path / "data" / "db.sqlite3").exists()

        pids = [int(p) for p in re.findall(r"\| \w+\.1 started \(pid=(\d+)\)", run.output())]
        assert len(pids) == 3, run.output()
    finally:
        # Ctrl-C in a terminal signals the whole foreground process group.
        run.signal_group(signal.SIGINT)
        try:
            wait_for(lambda: not run.running(), timeout=40, what="make run to exit")
        finally:
            run.stop(signal.SIGKILL)

    for pid in pids:
        wait_for(lambda pid=pid: _gone(pid), timeout=10, what=f"process group {pid} to end")
