"""The newcomer's path, end to end: a fresh clone, the runtime lock alone, `make run`.

    python3.11 -m devtools.newcomer [--worktree] [--port 8000] [--keep]

1. clone the project into a temporary folder (--worktree: copy the files git would commit
   now, uncommitted changes included, as the tests do);
2. `make install`: a new .venv from requirements.lock alone, as `make run` builds it;
3. `python -m devtools.runtime_check`, `manage.py init_data` and `manage.py check` in
   that environment;
4. `make run` in the background on the embedded defaults; wait for /healthz and /readyz;
   read the printed one-time password; sign in through the login form (CSRF included) and
   choose a new password as the portal asks;
5. Ctrl-C (SIGINT to make's process group, as a terminal sends it); check that web,
   worker and beat are gone, that no process runs in the clone and that the port is free.

Standard library only: it runs before any environment of the project exists. Exit 0 when
every step passes; otherwise 1, with the step, the reason and the end of the output.
"""

import argparse
import contextlib
import http.cookiejar
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A newcomer's shell has none of these: the portal runs on its embedded defaults.
PORTAL_SETTINGS = ("ECRPORTAL_", "DATABASE_URL", "CELERY_", "SECRET_KEY", "DEBUG", "DJANGO_")
NOT_A_NEWCOMERS = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTEST_", "MAKEFLAGS", "MFLAGS")


class NewcomerError(Exception):
    """A step failed; the message says which and why."""


def say(message: str) -> None:
    print(f"newcomer: {message}", flush=True)


def newcomer_environ(**settings: str) -> dict[str, str]:
    """This environment without the project's settings, virtualenvs or test variables."""
    drop = PORTAL_SETTINGS + NOT_A_NEWCOMERS
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    # No project .venv on PATH: `make` finds the machine's own python3.11.
    path = [p for p in env.get("PATH", "").split(os.pathsep) if "/.venv/" not in p + "/"]
    env["PATH"] = os.pathsep.join(path)
    env.update(settings)
    return env


def checkout(dest: Path, *, worktree: bool, source: Path = ROOT) -> Path:
    """The project in dest/ecrportal: a git clone, or the files git would commit now."""
    target = dest / "ecrportal"
    if not worktree:
        dirty = subprocess.run(
            ["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if dirty:
            say("uncommitted changes are not in the clone (use --worktree to include them)")
        _run(["git", "clone", "--quiet", "--no-hardlinks", str(source), str(target)], dest)
        return target
    listed = subprocess.run(
        ["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        src = source / name
        if not src.is_file():  # deleted but not yet committed
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target / name)
    return target


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, what: str = "") -> str:
    done = subprocess.run(
        args,
        cwd=cwd,
        env=env or newcomer_environ(),
        capture_output=True,
        text=True,
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        raise NewcomerError(f"{what or ' '.join(args)} failed (exit {done.returncode}):\n{output}")
    return output


def install(project: Path) -> float:
    """`make install`: .venv from requirements.lock alone. Returns the seconds it took."""
    started = time.monotonic()
    _run(["make", "--no-print-directory", "install"], project, what="make install")
    return time.monotonic() - started


def check_runtime(project: Path) -> str:
    """devtools.runtime_check, `manage.py init_data` and `manage.py check`, in the .venv."""
    python = str(project / ".venv" / "bin" / "python")
    env = newcomer_environ(ECRPORTAL_DATA_DIR=str(project / "var" / "check"))
    out = _run(
        [python, "-m", "devtools.runtime_check"], project, env, "the runtime environment check"
    )
    out += _run([python, "manage.py", "init_data"], project, env, "manage.py init_data")
    out += _run([python, "manage.py", "check"], project, env, "manage.py check")
    return out


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As a server binds: a connection in TIME_WAIT does not count, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for(predicate, *, timeout: float, what: str, run: "MakeRun | None" = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        if run is not None and not run.running():
            raise NewcomerError(f"make run exited while waiting for {what}")
        time.sleep(0.25)
    raise NewcomerError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class MakeRun:
    """`make run` in its own process group, its output in a file."""

    project: Path
    port: int
    log_path: Path
    popen: subprocess.Popen | None = None
    started_at: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "MakeRun":
        if not port_is_free(self.port):
            raise NewcomerError(f"port {self.port} is in use before make run started")
        env = newcomer_environ(
            ECRPORTAL_BIND=f"127.0.0.1:{self.port}", ECRPORTAL_SITE_URL=self.url
        )
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=self.project,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started_at = time.monotonic()
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def mark(self, what: str) -> None:
        self.timings[what] = time.monotonic() - self.started_at

    def children(self) -> dict[str, int]:
        """{"web": pid, …} as honcho prints them."""
        return {
            name: int(pid)
            for name, pid in re.findall(r"\| (\w+)\.1 started \(pid=(\d+)\)", self.output())
        }

    def ctrl_c(self, timeout: float = 40) -> int:
        """SIGINT to the whole group, as a terminal sends Ctrl-C; make's exit status."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGINT)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NewcomerError(f"make run did not exit within {timeout:g} s of Ctrl-C") from None

    def kill(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            for pid in self.children().values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
            self._log.close()


def http_get(opener, url: str) -> tuple[int, str, str]:
    """(status, final URL, body); status 0 when nothing answers yet."""
    try:
        with opener.open(url, timeout=15) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, url, e.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
        return 0, url, str(e)


def http_post_form(opener, url: str, fields: dict[str, str]) -> tuple[int, str, str]:
    page = http_get(opener, url)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page[2])
    if page[0] != 200 or token is None:
        raise NewcomerError(f"{url} answered {page[0]} without a CSRF token:\n{page[2][:500]}")
    data = urllib.parse.urlencode({"csrfmiddlewaretoken": token[1], **fields}).encode()
    request = urllib.request.Request(url, data=data, headers={"Referer": url})
    try:
        with opener.open(request, timeout=15) as response:
            return response.status, response.url, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, url, e.read().decode()


def sign_in(run: MakeRun) -> str:
    """Sign in as the printed first admin and choose a password; returns the username."""
    # Printed once the processes are up, the last lines of the start.
    wait_for(
        lambda: re.search(r"One-time password: +\S+", run.output()),
        timeout=30,
        what="make run to print the first admin and one-time password",
        run=run,
    )
    output = run.output()
    user = re.search(r"First admin account: +(\S+)", output)
    password = re.search(r"One-time password: +(\S+)", output)
    if not (user and password):
        raise NewcomerError("make run printed no first admin and one-time password")
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    status, url, body = http_post_form(
        opener, run.url + "/login/", {"username": user[1], "password": password[1]}
    )
    if status != 200 or not url.endswith("/account/password/"):
        raise NewcomerError(
            f"the printed password did not sign in: {status} at {url}:\n{body[:800]}"
        )
    new_password = "newcomer-" + os.urandom(12).hex()
    status, url, body = http_post_form(
        opener,
        run.url + "/account/password/",
        {
            "old_password": password[1],
            "new_password1": new_password,
            "new_password2": new_password,
        },
    )
    if status != 200 or urllib.parse.urlsplit(url).path != "/" or "Sign out" not in body:
        raise NewcomerError(f"choosing a new password failed: {status} at {url}:\n{body[:800]}")
    return user[1]


def processes_in(folder: Path) -> list[str]:
    """Processes whose working folder is inside `folder` (Linux's /proc), as "pid command"."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            cwd = Path(os.readlink(proc / "cwd"))
            if cwd == folder or folder in cwd.parents:
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                found.append(f"{proc.name} {command.strip()}")
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended; only its parent has not collected it yet.
    with contextlib.suppress(OSError):
        if (Path("/proc") / str(pid) / "stat").read_text().split(") ", 1)[1][0] == "Z":
            return False
    return True


def serve_and_stop(run: MakeRun) -> dict[str, int]:
    """Steps 4 and 5 on a started `make run`; returns the children's pids."""
    opener = urllib.request.build_opener()
    # /healthz: the web process answers; /readyz: the database and a worker consuming.
    for check, timeout in (("healthz", 120), ("readyz", 90)):
        wait_for(
            lambda check=check: http_get(opener, f"{run.url}/{check}")[0] == 200,
            timeout=timeout,
            what=f"/{check}",
            run=run,
        )
        run.mark(check)
    healthz, readyz = run.timings["healthz"], run.timings["readyz"]
    say(f"/healthz answered after {healthz:.1f} s, /readyz after {readyz:.1f} s")
    user = sign_in(run)
    say(f"signed in as {user} with the printed one-time password and chose a new one")
    children = run.children()
    if set(children) != {"web", "worker", "beat"}:
        raise NewcomerError(f"make run started {sorted(children)}, not web, worker and beat")

    status = run.ctrl_c()
    wait_for(
        lambda: not any(alive(pid) for pid in children.values()),
        timeout=15,
        what="web, worker and beat to end",
    )
    left = processes_in(run.project)
    if left:
        raise NewcomerError("processes left behind after Ctrl-C:\n  " + "\n  ".join(left))
    wait_for(lambda: port_is_free(run.port), timeout=10, what=f"port {run.port} to be free")
    how = f"by {signal.Signals(-status).name}" if status < 0 else f"with status {status}"
    say(f"Ctrl-C: make ended {how}; web, worker and beat ended; port {run.port} is free")
    return children


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3.11 -m devtools.newcomer", description=__doc__)
    parser.add_argument("--worktree", action="store_true", help="copy the work tree, not HEAD")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    dest = Path(tempfile.mkdtemp(prefix="ecrportal-newcomer-"))
    run = None
    try:
        project = checkout(dest, worktree=args.worktree)
        say(f"{'copied the work tree' if args.worktree else 'cloned'} into {project}")
        seconds = install(project)
        say(f"make install: .venv from requirements.lock alone in {seconds:.1f} s")
        print(check_runtime(project).strip(), flush=True)
        run = MakeRun(project, args.port, dest / "make-run.log").start()
        serve_and_stop(run)
    except NewcomerError as e:
        print(f"newcomer: FAILED: {e}", file=sys.stderr)
        if run is not None:
            tail = "\n".join(run.output().splitlines()[-60:])
            print(f"--- the end of make run's output ---\n{tail}", file=sys.stderr)
        return 1
    finally:
        if run is not None:
            run.kill()
        if args.keep:
            say(f"kept {dest}")
        else:
            shutil.rmtree(dest, ignore_errors=True)
    say("passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
