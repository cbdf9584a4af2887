"""`make run` as a newcomer runs it: a copy of the project, a .venv from requirements.lock
alone (never the dev lock), the embedded defaults (SQLite, the file-system broker)."""

import os
import re
import signal
import subprocess

import pytest

from devtools import newcomer, runtime_check
from tests.helpers import ROOT, free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The work tree copied as git would commit it, with its own runtime-only .venv."""
    project = newcomer.checkout(tmp_path_factory.mktemp("newcomer"), worktree=True)
    seconds = newcomer.install(project)
    print(f"runtime .venv from requirements.lock in {seconds:.1f} s")
    return project


def _pip(project, *args):
    return subprocess.run(
        [project / ".venv/bin/python", "-m", "pip", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_the_runtime_environment_has_only_the_runtime_lock(project):
    frozen = _pip(project, "freeze", "--all").splitlines()
    installed = dict(line.split("==") for line in frozen if "==" in line)
    installed = {runtime_check.normalize(name): v for name, v in installed.items()}
    for own in ("pip", "setuptools"):  # what `python -m venv` puts in every environment
        installed.pop(own, None)
    assert installed == runtime_check.locked_versions(project / "requirements.lock")
    assert "certifi" in installed
    assert "moto" not in installed


def test_every_module_imports_in_the_runtime_environment(project):
    output = newcomer.check_runtime(project)
    assert re.search(
        r"\d+ modules of ecrportal, tasks_app and the production database and broker "
        r"modules import",
        output,
    )
    assert "certifi" in output
    assert "System check identified no issues" in output


def _started_part(output: str) -> list[str]:
    """The lines up to the first one after the banner (Ctrl-C's, sign-in's requests)."""
    lines = output.splitlines()
    end = next(i for i, line in enumerate(lines) if "It is shown only now" in line)
    return lines[: end + 1]


def test_make_run_serves_the_portal_signs_in_and_stops_everything_on_ctrl_c(project, tmp_path):
    port = free_port()
    run = newcomer.MakeRun(project, port, tmp_path / "run.log").start()
    try:
        children = newcomer.serve_and_stop(run)
        output = run.output()
    finally:
        run.kill()
    print(f"make run: /readyz answered {run.timings['readyz']:.1f} s after it started")
    started = _started_part(output)
    # The address and the one-time password are the last lines, after the processes are up.
    assert started[-4] == f"ECR Portal: open http://127.0.0.1:{port}/"
    assert re.fullmatch(r"  One-time password: +\S{16}", started[-2])
    assert any("celery@" in line and "ready." in line for line in started[:-5])
    assert any("beat: Starting" in line for line in started[:-5])
    assert any("Listening at: http://127.0.0.1:" in line for line in started[:-5])
    # No start-up noise: kombu's and the root warning, Celery's banners, the probe.
    for noise in ("WARNING", "SecurityWarning", "[tasks]", "Configuration ->", "/readyz?probe"):
        assert not any(noise in line for line in started), noise
    # Ctrl-C reads as stopping: every process stopped, no error, make ends by the SIGINT it
    # was sent (GNU make re-raises it once its recipe has ended, whatever that recipe's
    # status), printing nothing of its own.
    after = output.splitlines()[len(started) :]
    assert "system   | Stopping web, worker, beat." in "\n".join(after)
    assert after[-1].endswith("system   | Stopped.")
    assert not [line for line in output.splitlines() if "ERROR" in line or "Error" in line]
    assert "exited with" not in output
    assert run.popen.returncode == -signal.SIGINT
    assert (project / "var" / "db.sqlite3").exists()
    assert set(children) == {"web", "worker", "beat"}
    assert not any(newcomer.alive(pid) for pid in children.values())

    # A later start has no password to show: it says how to set a new one.
    again = newcomer.MakeRun(project, port, tmp_path / "again.log").start()
    try:
        newcomer.wait_for(
            lambda: "Lost its password?" in again.output(), timeout=120, what="the banner"
        )
        lines = [line for line in again.output().splitlines() if line.strip()]
        assert again.ctrl_c() == -signal.SIGINT
    finally:
        again.kill()
    assert lines[-2:] == [
        "  Sign in as admin (admin account created on first start).",
        "  Lost its password? Set a new one: .venv/bin/python manage.py changepassword admin",
    ]
    assert "changepassword" in (ROOT / "README.md").read_text()


def test_a_port_in_use_is_named_with_how_to_choose_another_before_anything_starts(
    project, tmp_path
):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = newcomer.newcomer_environ(
            ECRPORTAL_DATA_DIR=str(tmp_path / "data"),
        )
        done = subprocess.run(
            ["make", "--no-print-directory", "run", f"PORT={port}"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    assert f"make run: port {port} (the portal's, ECRPORTAL_BIND=127.0.0.1:{port}) is " in (
        done.stderr
    )
    assert f"in use by process {os.getpid()} (" in done.stderr
    assert re.search(r"choose another port: make run PORT=\d+", done.stderr)
    assert not (tmp_path / "data").exists()  # nothing started, nothing created


def test_a_package_missing_from_the_runtime_environment_is_named(project, tmp_path):
    """Last in this file: it takes a package out of the shared .venv."""
    _pip(project, "uninstall", "--yes", "certifi")

    with pytest.raises(newcomer.NewcomerError) as failed:
        newcomer.check_runtime(project)
    assert "missing module 'certifi' (imported by tasks_app/lib/webhooks.py:" in str(failed.value)

    # make run itself stops at migrate, naming it too (the bug this file guards against).
    env = newcomer.newcomer_environ(ECRPORTAL_DATA_DIR=str(tmp_path / "data"))
    done = subprocess.run(
        ["make", "--no-print-directory", "run"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "No module named 'certifi'" in done.stderr
