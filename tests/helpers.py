"""Helpers shared by the tests: services that may be absent, and real portal processes."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
REQUIRE_SERVICES = os.environ.get("ECRPORTAL_REQUIRE_SERVICES") == "1"
ARTIFACTS = ROOT / "test-artifacts"


def require(available: bool, reason: str) -> None:
    """Skip when a service is missing, or fail under ECRPORTAL_REQUIRE_SERVICES=1."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ECRPORTAL_REQUIRE_SERVICES=1 turns this skip into a failure)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 15) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers (yet)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, ConnectionError) as e:
        return 0, str(e)


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def database_url() -> str:
    """A DATABASE_URL that points a child process at the test database."""
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    if connection.vendor == "postgresql":
        auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
        return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    raise NotImplementedError(connection.vendor)


# Set for this process only (the browser tests need it); never for a child portal.
TEST_PROCESS_ONLY = ("PYTEST_", "DJANGO_ALLOW_ASYNC_UNSAFE")
PORTAL_SETTINGS = ("ECRPORTAL_", "DATABASE_URL", "CELERY_BROKER_URL", "SECRET_KEY", "DEBUG")


def child_environ(*, portal_settings: bool = True) -> dict[str, str]:
    """This process's environment for a child, without what only the tests may set.

    With portal_settings=False, the portal's own variables are dropped too, so
    that the child runs on the embedded defaults.
    """
    drop = TEST_PROCESS_ONLY + (() if portal_settings else PORTAL_SETTINGS)
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def portal_env(data_dir: Path, **overrides: str) -> dict[str, str]:
    """Environment for a child portal process that shares this test's database."""
    from django.conf import settings

    env = child_environ()
    env.update(
        {
            "ECRPORTAL_DATA_DIR": str(data_dir),
            # The same keys as this process: the children read what it encrypted.
            "ECRPORTAL_ENCRYPTION_KEYS": ",".join(settings.ENCRYPTION_KEYS),
            "SECRET_KEY": settings.SECRET_KEY,
            "DATABASE_URL": database_url(),
            "DJANGO_SETTINGS_MODULE": "ecrportal.settings",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


@dataclass
class Process:
    """A child process with its output in a file, stopped and reaped at teardown."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    popen: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> "Process":
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.popen is None:
            return None
        if self.running():
            self.signal_group(sig)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._log.close()
        return self.popen.returncode


def python_process(name: str, args: list[str], env: dict[str, str], tmp_path: Path) -> Process:
    return Process(name, [sys.executable, *args], env, tmp_path / f"{name}.log")


def web_process(env: dict[str, str], tmp_path: Path, port: int) -> Process:
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    env = {**env, "ECRPORTAL_BIND": f"127.0.0.1:{port}", "ECRPORTAL_WEB_WORKERS": "1"}
    args = [gunicorn, "--config", "python:ecrportal.gunicorn_conf", "ecrportal.wsgi"]
    return Process("web", args, env, tmp_path / "web.log")


def beat_process(env: dict[str, str], tmp_path: Path) -> Process:
    schedule = str(tmp_path / "celerybeat-schedule")
    args = [
        "-m",
        "celery",
        "--app",
        "ecrportal",
        "beat",
        "--loglevel",
        "INFO",
        "--schedule",
        schedule,
    ]
    return python_process("beat", args, env, tmp_path)


def worker_process(
    env: dict[str, str], tmp_path: Path, name: str = "worker", extra: tuple[str, ...] = ()
) -> Process:
    """A worker as the Procfile starts one (every queue), plus `extra` arguments."""
    args = [
        "-m",
        "celery",
        "--app",
        "ecrportal",
        "worker",
        "--loglevel",
        "INFO",
        "--concurrency",
        "1",
        "--hostname",
        f"{name}@%h",
        *extra,
    ]
    return python_process(name, args, env, tmp_path)


@contextlib.contextmanager
def database_outage(*, keep=()):
    """The test's PostgreSQL database goes down for the block, without touching the shared
    cluster: it refuses new connections (ALLOW_CONNECTIONS false) and every connection to
    it but this test's own and the `keep` backends' is killed (pg_terminate_backend, from
    an admin connection to the `postgres` database). A real outage for the portal's
    processes, with no savepoint to hide it; it ends, like a restart, when the block does.
    Yields the admin connection."""
    import psycopg
    from psycopg import sql

    assert connection.vendor == "postgresql", "database_outage needs PostgreSQL"
    name = connection.settings_dict["NAME"]
    connection.ensure_connection()
    kept = [connection.connection.info.backend_pid, *keep]
    admin_url = database_url().rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        database = sql.Identifier(name)
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(database))
        try:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> ALL(%s)",
                [name, kept],
            )
            yield admin
        finally:
            admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(database))


def metric_samples(body: bytes | str) -> dict[tuple, float]:
    """/metrics' body read by prometheus_client's own parser: each sample's value by its
    name and labels, as (name, (("label", "value"), ...)) with the labels sorted."""
    from prometheus_client.parser import text_string_to_metric_families

    text = body.decode() if isinstance(body, bytes) else body
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def web_serving(port: int, timeout: float = 30) -> None:
    """Wait until a web process started by the test answers /healthz."""
    wait_for(
        lambda: http_get(f"http://127.0.0.1:{port}/healthz")[0] == 200,
        timeout=timeout,
        what="gunicorn to serve /healthz",
    )


# make run's supervisor (devtools/serve.py) over a Procfile of the test's, without its setup
# commands (ensure_admin, demo_seed).
_SUPERVISE = (
    "import sys; from pathlib import Path; from devtools.serve import Supervisor; "
    "s = Supervisor(Path(sys.argv[1]), setup=[]); s.start(); sys.exit(s.loop())"
)


def supervisor_process(procfile: str, env: dict[str, str], tmp_path: Path) -> Process:
    """The Procfile's processes under make run's supervisor, as a Process (not started)."""
    (tmp_path / "Procfile").write_text(procfile)
    env = {**env, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-c", _SUPERVISE, str(tmp_path / "Procfile")]
    return Process("serve", args, env, tmp_path / "serve.log")
