"""`make run` and `make demo`: start a Procfile's processes, say so once they are up, and
stop them all on Ctrl-C.

    python3 -m devtools.serve --check-ports [--aws-port 5000] [--port-variable PORT] GOAL
    .venv/bin/python -m devtools.serve [--demo] PROCFILE

--check-ports (the standard library only: it runs before the .venv exists) says which
program already listens on the portal's port (ECRPORTAL_BIND) or the AWS stand-in's, and
how to choose another, before anything is installed or started.

Otherwise: `manage.py ensure_admin` (and with --demo `manage.py demo_seed`), then every
process of the Procfile in its own session, their lines prefixed with their names
(honcho's printer) less the routine ones a person does not need (each refresh tick's task
lines, the probe's own requests). Once /readyz answers (the web process, the database and
a worker consuming), the address and the first admin's one-time password are the last
lines printed. Ctrl-C sends SIGTERM to each process (not to its group: a Celery worker
stops its own pool), and ends with status 0 once all have stopped.
"""

import argparse
import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_BIND = "127.0.0.1:8000"
# Seconds a process has to stop after SIGTERM before it is killed.
STOP_SECONDS = 20
# A process that ends by itself is started again, RESTART_LIMIT times within RESTART_WINDOW
# seconds; once more and everything stops (it would only keep failing).
RESTART_LIMIT = 5
RESTART_WINDOW = 60
PROBE = "/readyz?probe=devtools.serve"
# Lines a person does not need: each refresh tick's (every 30 s), the probe's requests.
ROUTINE = re.compile(
    r"Scheduler: Sending due task |Task tasks_app\.tasks\.\w+\[[\w-]+\] (received|succeeded)"
    rf"|\"GET {re.escape(PROBE)} "
)
# Root may run make run on a throwaway machine; the image runs unprivileged, and the
# workers accept JSON only (Celery itself refuses pickle as root).
QUIET_WARNINGS = "ignore:You're running the worker with superuser privileges"


def bind_port(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        # As a server binds: a connection in TIME_WAIT does not count, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def listener(port: int) -> str | None:
    """ "process 1234 (its command line)" listening on the port, if Linux's /proc says."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    for fd in Path("/proc").glob("[0-9]*/fd/*") if inodes else ():
        with contextlib.suppress(OSError):
            if os.readlink(fd) in inodes:
                pid = fd.parent.parent.name
                command = (fd.parent.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                return f"process {pid} ({command.decode(errors='replace').strip()[:120]})"
    return None


def port_problems(goal: str, aws_port: int | None, port_variable: str | None) -> list[str]:
    bind = os.environ.get("ECRPORTAL_BIND", DEFAULT_BIND)
    host, port = bind_port(bind)
    checks = [(host, port, "the portal's", port_variable, f"ECRPORTAL_BIND={bind}")]
    if aws_port is not None:
        checks.append(("127.0.0.1", aws_port, "the AWS stand-in's", None, ""))
    problems = []
    for host, port, whose, variable, setting in checks:
        if not port_in_use(host, port):
            continue
        other = next(p for p in range(port + 1, port + 100) if not port_in_use(host, p))
        if whose == "the AWS stand-in's":
            how = f"make {goal} ECRPORTAL_DEMO_AWS_PORT={other}"
        elif variable:
            how = f"make {goal} {variable}={other}"
        else:
            how = (
                f"ECRPORTAL_BIND={host}:{other} ECRPORTAL_SITE_URL=http://127.0.0.1:{other} "
                f"make {goal}"
            )
        who = listener(port) or "another program"
        problems.append(
            f"make {goal}: port {port} ({whose}{', ' + setting if setting else ''}) is already "
            f"in use by {who}; perhaps make run or make demo is running in another terminal.\n"
            f"  Stop it, or choose another port: {how}"
        )
    return problems


class Supervisor:
    """The Procfile's processes, their output on one screen, and their end."""

    def __init__(self, procfile: Path, *, setup: list[list[str]]):
        from honcho.environ import parse_procfile
        from honcho.printer import Printer

        self.commands = parse_procfile(procfile.read_text()).processes
        self.setup = setup
        self.printer = Printer(sys.stdout, colour=False)
        self.printer.width = max(len(n) + 2 for n in [*self.commands, "system"])
        self.events: queue.Queue = queue.Queue()
        self.children: dict[str, subprocess.Popen] = {}
        self.restarts: dict[str, list[float]] = {}
        self.env: dict[str, str] = {}
        self.stopping = threading.Event()
        self.banner: list[str] = []
        self.banner_at: float | None = None
        self.probe_logged = False
        host, port = bind_port(os.environ.get("ECRPORTAL_BIND", DEFAULT_BIND))
        wildcard = host in ("0.0.0.0", "::")  # noqa: S104 - compared, not bound
        self.url = f"http://{'127.0.0.1' if wildcard else host}:{port}"

    def say(self, text: str, name: str = "system") -> None:
        from honcho.printer import Message

        self.printer.write(Message("line", text + "\n", datetime.now(), name, None))

    def prepare(self) -> None:
        """The setup commands' output becomes the banner, printed when all is up: the
        first command's (ensure_admin: the address and the password) last."""
        for args in self.setup:
            done = subprocess.run(
                [sys.executable, *args], stdout=subprocess.PIPE, text=True, check=False
            )
            if done.returncode != 0:
                sys.stdout.write(done.stdout)
                raise SystemExit(done.returncode)
            self.banner[:0] = done.stdout.splitlines()

    def start(self) -> None:
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "PYTHONWARNINGS": ",".join(
                filter(None, [os.environ.get("PYTHONWARNINGS"), QUIET_WARNINGS])
            ),
        }
        self.env = env
        self.say(f"Starting {', '.join(self.commands)}; press Ctrl-C to stop them.")
        for name in self.commands:
            self._spawn(name)
        threading.Thread(target=self._probe, daemon=True).start()

    def _spawn(self, name: str) -> None:
        child = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {self.commands[name]}"],  # the process itself, not a shell
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches this supervisor only
        )
        self.children[name] = child
        self.say(f"{name}.1 started (pid={child.pid})")
        threading.Thread(target=self._read, args=(f"{name}.1", child), daemon=True).start()

    def _restart(self, name: str, status: int) -> bool:
        """Start a process that ended by itself again (a worker that lost its broker for
        good, say), unless it keeps ending: then False, and all stop."""
        at = time.monotonic()
        recent = [t for t in self.restarts.get(name, []) if at - t < RESTART_WINDOW]
        if len(recent) >= RESTART_LIMIT:
            return False
        self.restarts[name] = [*recent, at]
        self.say(f"{name}.1 ended by itself (status {status}); starting it again.")
        self._spawn(name)
        return True

    def _read(self, name: str, child: subprocess.Popen) -> None:
        for raw in iter(child.stdout.readline, b""):
            self.events.put((name, raw.decode(errors="replace").rstrip("\n")))
        child.wait()
        self.events.put((name, None))

    def _probe(self) -> None:
        while not self.stopping.is_set():
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(self.url + PROBE, timeout=30) as response,  # noqa: S310 - http://host:port of ECRPORTAL_BIND
            ):
                if response.status == 200:
                    self.events.put(("ready", None))
                    return
            self.stopping.wait(0.5)

    def _stop(self, *_) -> None:
        self.stopping.set()

    def print_banner(self) -> None:
        if self.banner:
            sys.stdout.write("\n".join(self.banner) + "\n")
            sys.stdout.flush()
            self.banner = []

    def loop(self) -> int:
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        ended: dict[str, int] = {}
        failed = None
        deadline = None
        while len(ended) < len(self.children):
            if self.stopping.is_set() and deadline is None:
                self.say(f"Stopping {', '.join(self.children)}.")
                for child in self.children.values():
                    if child.poll() is None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(child.pid, signal.SIGTERM)
                deadline = time.monotonic() + STOP_SECONDS
            if deadline is not None and time.monotonic() > deadline:
                for name, child in self.children.items():
                    if child.poll() is None:
                        self.say(f"{name} did not stop within {STOP_SECONDS} s; killing it")
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(child.pid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_SECONDS
            if self.banner_at is not None and (
                self.probe_logged or time.monotonic() > self.banner_at + 2
            ):
                self.banner_at = None
                self.print_banner()
            try:
                name, line = self.events.get(timeout=0.2)
            except queue.Empty:
                continue
            if name == "ready":
                self.banner_at = time.monotonic()
            elif line is None:
                process = name.partition(".")[0]
                status = self.children[process].wait()
                if not self.stopping.is_set() and self._restart(process, status):
                    continue
                ended[process] = status
                if not self.stopping.is_set():
                    failed = (
                        f"{name} ended by itself {RESTART_LIMIT + 1} times within "
                        f"{RESTART_WINDOW} s (status {status})"
                    )
                    self.say(failed + "; stopping the others.")
                    self.stopping.set()
            elif ROUTINE.search(line):
                self.probe_logged |= PROBE in line and '" 200 ' in line
            else:
                self.say(line, name)
        self.say(f"Stopped: {failed}." if failed else "Stopped.")
        self.print_banner()  # if not printed yet: a one-time password is never lost
        return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.serve", description=__doc__)
    parser.add_argument("procfile", help="the Procfile; with --check-ports, the make goal")
    parser.add_argument("--check-ports", action="store_true")
    parser.add_argument("--aws-port", type=int)
    parser.add_argument("--port-variable")
    parser.add_argument("--demo", action="store_true", help="run manage.py demo_seed too")
    args = parser.parse_args(argv)
    if args.check_ports:
        problems = port_problems(args.procfile, args.aws_port, args.port_variable)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    setup = [["manage.py", "ensure_admin"]] + ([["manage.py", "demo_seed"]] if args.demo else [])
    supervisor = Supervisor(ROOT / args.procfile, setup=setup)
    supervisor.prepare()
    supervisor.start()
    return supervisor.loop()


if __name__ == "__main__":
    sys.exit(main())
