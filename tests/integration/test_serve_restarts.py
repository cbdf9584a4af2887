"""`make run`'s supervisor (devtools/serve.py) starts again a process that ends by itself,
as Compose's `restart: unless-stopped` does (issue 25 §2.5: a worker that lost its broker
for good must not leave the portal without one), and gives up on one that keeps ending."""

import signal
import sys

import pytest

from tests.helpers import Process, free_port, supervisor_process, wait_for

pytestmark = pytest.mark.integration


def _supervisor(tmp_path, procfile: str) -> Process:
    env = {
        "PATH": "/usr/bin:/bin",
        "ECRPORTAL_BIND": f"127.0.0.1:{free_port()}",  # nothing answers: never "ready"
    }
    return supervisor_process(procfile, env, tmp_path).start()


def test_a_process_that_ends_by_itself_is_started_again(tmp_path):
    flag = tmp_path / "crashed-once"
    once = (
        f"import pathlib, sys, time; f = pathlib.Path({str(flag)!r}); "
        "crashed = f.exists(); f.touch(); print('up', flush=True); "
        "sys.exit(3) if not crashed else time.sleep(600)"
    )
    serve = _supervisor(
        tmp_path,
        f'worker: {sys.executable} -c "{once}"\n'
        f"steady: {sys.executable} -c \"import time; print('up', flush=True); time.sleep(600)\"\n",
    )
    try:
        wait_for(
            lambda: serve.output().count("worker.1 started") == 2,
            timeout=30,
            what="the worker to be started again",
        )
        assert "worker.1 ended by itself (status 3); starting it again." in serve.output()
        assert serve.running()
        serve.popen.send_signal(signal.SIGINT)
        assert serve.popen.wait(timeout=30) == 0
        assert serve.output().rstrip().endswith("Stopped.")
    finally:
        serve.stop()


def test_a_process_that_keeps_ending_stops_everything_and_says_why(tmp_path):
    serve = _supervisor(
        tmp_path,
        f'worker: {sys.executable} -c "import sys; sys.exit(4)"\n'
        f'steady: {sys.executable} -c "import time; time.sleep(600)"\n',
    )
    try:
        assert serve.popen.wait(timeout=60) == 1
        output = serve.output()
        assert output.count("worker.1 started") == 6
        assert "worker.1 ended by itself 6 times within 60 s (status 4)" in output
        assert "Stopped: worker.1 ended by itself 6 times" in output
    finally:
        serve.stop()
