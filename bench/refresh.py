"""Benchmark of the scheduled refresh, run by hand: .venv/bin/python bench/refresh.py

Against PostgreSQL and Redis (the production set-up) and a moto server on
127.0.0.1 whose ECR tokens last 12 hours, with real Celery worker processes:

- BENCH_TASKS tasks (10,000) over BENCH_GROUPS credential groups (200: half as
  many connectors as groups, each used in two regions);
- the idle tick: refresh_tick when nothing is due, timed in this process
  (median and worst of BENCH_IDLE_TICKS runs) with its SQL queries counted;
- a full cycle: every task made due, one refresh_tick sent to the workers as
  beat sends it, timed until every task has a new token and no lease;
- the GetAuthorizationToken calls moto answered during the cycle, counted in
  the server.

Targets (issue 6): AWS calls = groups; a full cycle under 60 s on 2 cores; an
idle tick under 50 ms.

Options (environment): BENCH_TASKS, BENCH_GROUPS, BENCH_WORKERS (worker
processes, 2), BENCH_CONCURRENCY (per worker, 2), BENCH_IDLE_TICKS (50),
BENCH_DATABASE_URL (postgres://postgres@127.0.0.1:5432/ecrportal_bench,
dropped and created), BENCH_BROKER_URL (redis://127.0.0.1:6379/14, flushed).
"""

import os
import signal
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
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "2"))
IDLE_TICKS = int(os.environ.get("BENCH_IDLE_TICKS", "50"))
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ecrportal_bench"
)
BROKER_URL = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")
REGIONS = ("eu-west-1", "us-east-1")
TASKS_PER_JOB = 10
JOBS_PER_PLAN = 5


def fresh_database() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as db:
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        db.execute(f'CREATE DATABASE "{name}"')


def seed() -> list:
    """Team, connectors, plans, jobs and tasks; nothing due yet."""
    from datetime import timedelta

    from django.utils.timezone import now

    from tasks_app.models import Connector, Job, Plan, TaskConfig, Team

    team = Team.objects.create(name="Bench", slug="bench")
    connectors = []
    for i in range(max(1, GROUPS // len(REGIONS))):
        connector = Connector(
            team=team,
            name=f"bench-{i:03d}",
            access_key_id=f"AKIABENCH{i:011d}",
            secret_access_key=f"bench{i:03d}wJalrXUtnFEMI/K7MDENG/bPxRfiCYEX",
        )
        connector.full_clean()
        connector.save()
        connectors.append(connector)
    combos = [(c, r) for c in connectors for r in REGIONS][:GROUPS]
    later = now() + timedelta(days=1)
    tasks, jobs = [], []
    plans = TASKS // (TASKS_PER_JOB * JOBS_PER_PLAN) + 1
    for p in range(plans):
        plan = Plan.objects.create(team=team, key=f"BENCH-P{p:04d}", name=f"Plan {p}")
        for j in range(JOBS_PER_PLAN):
            jobs.append(Job(plan=plan, key=f"JOB{j}", name=f"Job {j}"))
    Job.objects.bulk_create(jobs)
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
    TaskConfig.objects.bulk_create(tasks, batch_size=2000)
    return combos


def idle_ticks() -> tuple[list[float], int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from tasks_app.services.refresh import refresh_tick

    times = []
    refresh_tick()  # warm up
    with CaptureQueriesContext(connection) as queries:
        refresh_tick()
    for _ in range(IDLE_TICKS):
        started = time.perf_counter()
        refresh_tick()
        times.append(time.perf_counter() - started)
    return times, len(queries)


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


def bench_keys() -> dict[str, str]:
    """A secret key and an encryption key for one run, set as production sets them."""
    import secrets

    from cryptography.fernet import Fernet

    return {
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ECRPORTAL_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    }


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
        "ECRPORTAL_API_CACHE_SECONDS": "0",
    }
    sys.path.insert(0, str(ROOT))
    from moto.server import ThreadedMotoServer

    from devtools.aws_standin import realistic_ecr_tokens

    calls = {"n": 0}
    lock = threading.Lock()

    def count():
        with lock:
            calls["n"] += 1

    realistic_ecr_tokens(12, on_call=count)
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import logging

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
    from django.core.management import call_command
    from django.db.models import Count, Min, Q
    from django.utils.timezone import now

    from ecrportal.celery import app
    from tasks_app.models import TaskConfig, TaskRun

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    combos = seed()
    print(
        f"seeded {TASKS} tasks over {len(combos)} credential groups "
        f"({len(combos) // len(REGIONS)} connectors x {len(REGIONS)} regions) "
        f"in {time.perf_counter() - started:.1f} s"
    )

    times, queries = idle_ticks()
    print(
        f"idle tick (nothing due, {TASKS} tasks): median {statistics.median(times) * 1000:.2f} ms,"
        f" worst {max(times) * 1000:.2f} ms over {len(times)} ticks; {queries} SQL queries"
    )

    workers = start_workers(env, data_dir)
    try:
        wait_for_workers(WORKERS)
        cycle_start = now()
        TaskConfig.objects.update(refresh_due_at=cycle_start)
        calls["n"] = 0
        started = time.perf_counter()
        app.send_task("tasks_app.tasks.refresh_tick")
        done = Q(last_run_at__gte=cycle_start, lease_until__isnull=True)
        while True:
            finished = TaskConfig.objects.filter(done).count()
            if finished == TASKS:
                break
            if time.perf_counter() - started > 600:
                raise SystemExit(f"only {finished} of {TASKS} tasks refreshed after 600 s")
            time.sleep(0.2)
        wall = time.perf_counter() - started
        first = TaskRun.objects.filter(started__gte=cycle_start).aggregate(at=Min("started"))["at"]
        outcome = dict(
            TaskConfig.objects.values_list("last_run_ok").annotate(n=Count("id")).order_by()
        )
        print(
            f"full cycle: {TASKS} tasks refreshed in {wall:.1f} s "
            f"({TASKS / wall:.0f} tasks/s) with {WORKERS} workers x {CONCURRENCY} processes; "
            f"outcomes {outcome}; the tick (claim and group {TASKS} tasks) took "
            f"{(first - cycle_start).total_seconds():.2f} s to the first refresh"
        )
        n = calls["n"]
        print(f"GetAuthorizationToken calls answered by moto: {n} for {len(combos)} groups")
        print(
            "targets: AWS calls = groups "
            f"[{'met' if calls['n'] == len(combos) else 'MISSED'}], "
            f"full cycle < 60 s [{'met' if wall < 60 else 'MISSED'}], "
            f"idle tick < 50 ms [{'met' if statistics.median(times) < 0.05 else 'MISSED'}]"
        )
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=30)
        moto.stop()


if __name__ == "__main__":
    main()
