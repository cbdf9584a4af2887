"""Benchmark of the scheduled refresh, run by hand: .venv/bin/python bench/refresh.py

Against PostgreSQL and Redis (the production set-up), a moto server on 127.0.0.1 whose
ECR tokens last 12 hours, and real Celery worker processes, it measures:

- the idle tick: refresh_tick when nothing is due, timed in this process (median and
  worst of BENCH_IDLE_TICKS runs) with its SQL queries counted: before the cycle (no
  history), right after it (every task with a run, a status change and a credential,
  and the dead row versions of the cycle's updates), and once VACUUM ANALYZE has run, as
  autovacuum does within a minute or so (the target applies to this one);
- a full cycle: every task made due, at times spread over ten minutes as jitter leaves
  them, then refresh_tick sent to the workers every BENCH_TICK seconds, as beat sends it,
  until every task has a new token and no lease. Timed from the first tick;
- the GetAuthorizationToken calls moto answered during the cycle, against the groups;
- the distinct refresh times afterwards (one per group when no group was split), the
  groups whose tasks got more than one, and the credentials stored;
- the workers' peak resident memory (each Celery process, sampled every 0.2 s) and
  their CPU time for the cycle.

Data: BENCH_TASKS tasks (10,000; up to 100,000) over BENCH_GROUPS credential groups
(200): BENCH_GROUPS / BENCH_REGIONS connectors, each used in BENCH_REGIONS regions (1),
ten tasks per job, five jobs per plan, in one team.

Targets (issue 14), at 100,000 tasks and 2,000 groups (2,000 connectors) with 2 workers x
2 processes: AWS calls = groups; no group split; a full cycle under 120 s; an idle tick
under 50 ms; each worker process under 150 MiB.

Options (environment): BENCH_TASKS, BENCH_GROUPS, BENCH_REGIONS, BENCH_WORKERS (worker
processes, 2), BENCH_CONCURRENCY (per worker, 2), BENCH_TICK (seconds between ticks,
ECRPORTAL_REFRESH_TICK's default 30), BENCH_RATE (ECRPORTAL_AWS_CALL_RATE, its default
20), BENCH_IDLE_TICKS (50), BENCH_DATABASE_URL
(postgres://postgres@127.0.0.1:5432/ecrportal_bench, dropped and created),
BENCH_BROKER_URL (redis://127.0.0.1:6379/14, flushed).
"""

import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
TASKS = int(os.environ.get("BENCH_TASKS", "10000"))
GROUPS = int(os.environ.get("BENCH_GROUPS", "200"))
REGIONS = ("eu-west-1", "us-east-1", "us-west-2", "ap-southeast-2")[
    : int(os.environ.get("BENCH_REGIONS", "1"))
]
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "2"))
TICK = int(os.environ.get("BENCH_TICK", "30"))
RATE = os.environ.get("BENCH_RATE")
IDLE_TICKS = int(os.environ.get("BENCH_IDLE_TICKS", "50"))
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ecrportal_bench"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
TASKS_PER_JOB = 10
JOBS_PER_PLAN = 5
PAGE = 4096


def fresh_database() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


def seed() -> list:
    """Team, connectors, plans, jobs and tasks; nothing due yet. Returns the groups as
    (connector, region) pairs."""
    from datetime import timedelta

    from django.utils.timezone import now

    from tasks_app.models import Connector, Job, Plan, TaskConfig, Team

    team = Team.objects.create(name="Bench", slug="bench")
    connectors = []
    for i in range(max(1, GROUPS // len(REGIONS))):
        connector = Connector(
            team=team,
            name=f"bench-{i:04d}",
            access_key_id=f"AKIABENCH{i:011d}",
            secret_access_key=f"bench{i:05d}alrXUtnFEMI/K7MDENG/bPxRfiCYEX",
        )
        connector.full_clean()
        connector.save()
        connectors.append(connector)
    combos = [(c, r) for c in connectors for r in REGIONS][:GROUPS]
    later = now() + timedelta(days=1)
    plans = [
        Plan(team=team, key=f"BENCH-P{p:05d}", name=f"Plan {p}")
        for p in range(TASKS // (TASKS_PER_JOB * JOBS_PER_PLAN) + 1)
    ]
    Plan.objects.bulk_create(plans)
    jobs = [Job(plan=plan, key=f"JOB{j}", name=f"Job {j}") for plan in plans for j in range(5)]
    Job.objects.bulk_create(jobs, batch_size=5000)
    tasks = []
    for i in range(TASKS):
        connector, region = combos[i % len(combos)]
        tasks.append(
            TaskConfig(
                job=jobs[i // TASKS_PER_JOB],
                namespace=f"custom.aws{i % TASKS_PER_JOB}",
                region=region,
                connector=connector,
                refresh_due_at=later,
            )
        )
    TaskConfig.objects.bulk_create(tasks, batch_size=5000)
    return combos


def idle_ticks() -> tuple[list[float], int, str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tasks_app.services.refresh import refresh_tick

    times = []
    refresh_tick()  # warm up
    with CaptureQueriesContext(connection) as queries:
        refresh_tick()
    slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
    for _ in range(IDLE_TICKS):
        started = time.perf_counter()
        refresh_tick()
        times.append(time.perf_counter() - started)
    where = slowest["sql"].partition(" WHERE ")[2][:160]
    return times, len(queries), f"slowest {float(slowest['time']) * 1000:.1f} ms: ...WHERE {where}"


def start_workers(env: dict, log_dir: Path) -> list[subprocess.Popen]:
    workers = []
    for n in range(WORKERS):
        log = open(log_dir / f"worker{n}.log", "w")  # noqa: SIM115 - closed with the process
        workers.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "--app",
                    "ecrportal",
                    "worker",
                    "--loglevel",
                    "WARNING",
                    "--concurrency",
                    str(CONCURRENCY),
                    "--hostname",
                    f"bench{n}@%h",
                ],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    return workers


def wait_for_workers(count: int, timeout: float = 60) -> None:
    from ecrportal.celery import app

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.ping(timeout=1) or []
        if len(replies) >= count:
            return
    raise SystemExit(f"{count} workers did not answer within {timeout} s")


def in_process_environ(name: str) -> dict[str, str]:
    """The settings of a benchmark that runs the portal in its own process against this
    benchmark's database (bench/dashboard.py, bench/metrics.py): a data folder of its own."""
    return {
        **bench_keys(),
        "ECRPORTAL_DATA_DIR": tempfile.mkdtemp(prefix=f"ecrportal-bench-{name}-"),
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "ecrportal.settings",
        "ECRPORTAL_LOG_LEVEL": "WARNING",
    }


def bench_keys() -> dict[str, str]:
    """A secret key and an encryption key for one run, set as production sets them."""
    import secrets

    from cryptography.fernet import Fernet

    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ECRPORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (Linux /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(child) for child in children)
    return found


def rss_mib(pid: int) -> float:
    try:
        resident = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError):
        return 0.0
    return resident * PAGE / 2**20


def cpu_seconds(pid: int, *, user: bool = True, system: bool = True) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    ticks = (int(fields[11]) if user else 0) + (int(fields[12]) if system else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Peak RSS of every process of the workers, sampled every 0.2 s."""

    def __init__(self, workers):
        super().__init__(daemon=True)
        self.roots = [w.pid for w in workers]
        self.peaks: dict[int, float] = {}
        self.stop = threading.Event()

    def pids(self) -> list[int]:
        return [pid for root in self.roots for pid in process_tree(root)]

    def run(self):
        while not self.stop.wait(0.2):
            for pid in self.pids():
                self.peaks[pid] = max(self.peaks.get(pid, 0.0), rss_mib(pid))


def median_ms(times) -> str:
    return f"median {statistics.median(times) * 1000:.2f} ms, worst {max(times) * 1000:.2f} ms"


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="ecrportal-bench-refresh-"))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ECRPORTAL_")},
        **bench_keys(),
        "ECRPORTAL_DATA_DIR": str(data_dir),
        "DATABASE_URL": DATABASE_URL,
        "CELERY_BROKER_URL": BROKER_URL,
        "DJANGO_SETTINGS_MODULE": "ecrportal.settings",
        "ECRPORTAL_LOG_LEVEL": "WARNING",
        "ECRPORTAL_REFRESH_TICK": str(TICK),
    }
    if RATE is not None:
        env["ECRPORTAL_AWS_CALL_RATE"] = RATE
    sys.path.insert(0, str(ROOT))
    from moto.server import ThreadedMotoServer

    from devtools.aws_standin import realistic_ecr_tokens

    calls = {"n": 0}
    lock = threading.Lock()

    def count():
        with lock:
            calls["n"] += 1

    realistic_ecr_tokens(12, on_call=count)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    env["ECRPORTAL_AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    os.environ.update(env)
    for key in [k for k in os.environ if k.startswith("ECRPORTAL_") and k not in env]:
        del os.environ[key]

    fresh_database()
    import redis

    redis.Redis.from_url(BROKER_URL).flushdb()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Count, Q
    from django.utils.timezone import now

    from ecrportal.celery import app
    from tasks_app.models import Credential, TaskConfig

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    combos = seed()
    connectors = len({c.pk for c, _ in combos})
    print(
        f"seeded {TASKS} tasks over {len(combos)} credential groups ({connectors} connectors x "
        f"{len(REGIONS)} region{'s' if len(REGIONS) > 1 else ''}) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    before, before_queries, before_slowest = idle_ticks()
    print(
        f"idle tick, no history: {median_ms(before)} ({before_queries} SQL queries; "
        f"{before_slowest})"
    )

    workers = start_workers(env, data_dir)
    sampler = Sampler(workers)
    try:
        wait_for_workers(WORKERS)
        sampler.start()
        time.sleep(1)
        idle_rss = {pid: rss_mib(pid) for pid in sampler.pids()}
        cpu_before = sum(cpu_seconds(pid) for pid in sampler.pids())
        cycle_start = now()
        with connection.cursor() as cursor:  # due over the last ten minutes, as jitter does
            cursor.execute(
                "UPDATE tasks_app_taskconfig SET refresh_due_at = "
                "%s - random() * interval '600 seconds'",
                [cycle_start],
            )
        calls["n"] = 0
        done = Q(last_run_at__gte=cycle_start, lease_until__isnull=True)
        started = time.perf_counter()
        ticks, next_tick = 0, started
        while True:
            if time.perf_counter() >= next_tick:
                app.send_task("tasks_app.tasks.refresh_tick")
                ticks += 1
                next_tick += TICK
            finished = TaskConfig.objects.filter(done).count()
            if finished == TASKS:
                break
            if time.perf_counter() - started > 1800:
                raise SystemExit(f"only {finished} of {TASKS} tasks refreshed after 1800 s")
            time.sleep(0.5)
        wall = time.perf_counter() - started
        cpu = sum(cpu_seconds(pid) for pid in sampler.pids()) - cpu_before
        sampler.stop.set()
        sampler.join()
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        moto.stop()

    outcome = dict(
        TaskConfig.objects.values_list("last_run_ok").annotate(n=Count("id")).order_by()
    )
    times = TaskConfig.objects.values("refresh_due_at").distinct().count()
    split = (
        TaskConfig.objects.values("connector", "region")
        .annotate(times=Count("refresh_due_at", distinct=True))
        .filter(times__gt=1)
        .count()
    )
    credentials = Credential.objects.filter(created__gte=cycle_start).count()
    after, after_queries, after_slowest = idle_ticks()
    with connection.cursor() as cursor:  # what autovacuum does within a minute or so
        cursor.execute("VACUUM ANALYZE")
    vacuumed, _, vacuumed_slowest = idle_ticks()
    n = calls["n"]
    peak = max(sampler.peaks.values())
    print(
        f"full cycle: {TASKS} tasks refreshed in {wall:.1f} s ({TASKS / wall:.0f} tasks/s), "
        f"{ticks} ticks {TICK} s apart, {WORKERS} workers x {CONCURRENCY} processes, "
        f"rate {settings.AWS_CALL_RATE:g} calls/s; outcomes {outcome}"
    )
    print(
        f"GetAuthorizationToken calls answered by moto: {n} for {len(combos)} groups; "
        f"credentials stored: {credentials}; distinct refresh times afterwards: {times}; "
        f"groups split: {split}"
    )
    print(
        f"idle tick right after the cycle: {median_ms(after)} ({after_queries} SQL queries; "
        f"{after_slowest})"
    )
    print(
        f"idle tick once autovacuum has run (VACUUM ANALYZE): {median_ms(vacuumed)} "
        f"({vacuumed_slowest})"
    )
    print(
        "worker processes, peak RSS (idle before the cycle): "
        + ", ".join(
            f"{sampler.peaks[pid]:.0f} MiB ({idle_rss.get(pid, 0):.0f})"
            for pid in sorted(sampler.peaks)
        )
        + f"; their CPU for the cycle: {cpu:.1f} s ({cpu / TASKS * 1000:.2f} ms per task)"
    )
    idle = statistics.median(vacuumed)
    checks = [
        ("AWS calls = groups", n == len(combos)),
        ("no group split", split == 0 and times == len(combos)),
        ("full cycle < 120 s", wall < 120),
        ("idle tick < 50 ms", idle < 0.05),
        ("worker RSS <= 150 MiB", peak <= 150),
    ]
    print("targets: " + ", ".join(f"{name} [{'met' if ok else 'MISSED'}]" for name, ok in checks))


if __name__ == "__main__":
    main()
