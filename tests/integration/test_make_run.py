"""`make run` as a newcomer runs it: a copy of the project, a .venv from requirements.lock
alone (never the dev lock), the embedded defaults (SQLite, the file-system broker)."""

import re
import subprocess

import pytest

from devtools import newcomer, runtime_check
from tests.helpers import free_port

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


def test_make_run_serves_the_portal_signs_in_and_stops_everything_on_ctrl_c(project, tmp_path):
    port = free_port()
    run = newcomer.MakeRun(project, port, tmp_path / "run.log").start()
    try:
        children = newcomer.serve_and_stop(run)
        output = run.output()
    finally:
        run.kill()
    print(f"make run: /readyz answered {run.timings['readyz']:.1f} s after it started")
    assert f"ECR Portal: open http://127.0.0.1:{port}/" in output
    assert re.search(r"One-time password: +\S{16}", output)
    assert "beat: Starting" in output
    assert (project / "var" / "db.sqlite3").exists()
    assert set(children) == {"web", "worker", "beat"}
    assert not any(newcomer.alive(pid) for pid in children.values())


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
