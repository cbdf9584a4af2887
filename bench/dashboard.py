"""Benchmark of the dashboard page, run by hand: .venv/bin/python bench/dashboard.py

Seeds the scheduled-refresh benchmark's data (bench/refresh.py: 10,000 tasks, 200
credential groups) in PostgreSQL, gives every task a token and two runs within the
timeline's window, then requests the dashboard as a member of the team, unfiltered and
filtered by status, BENCH_REQUESTS times (20) each, through Django's test client (the
whole middleware stack, no network). Prints the median and worst time and the SQL
queries per page. Options: BENCH_TASKS, BENCH_GROUPS, BENCH_REQUESTS, BENCH_QUERIES=1
(print the slowest queries of each case), BENCH_DATABASE_URL (dropped and created).
"""

import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "20"))


def main() -> None:
    import refresh as refresh_bench

    os.environ.update(
        {
            **refresh_bench.bench_keys(),
            "ECRPORTAL_DATA_DIR": tempfile.mkdtemp(prefix="ecrportal-bench-dashboard-"),
            "DATABASE_URL": refresh_bench.DATABASE_URL,
            "DJANGO_SETTINGS_MODULE": "ecrportal.settings",
            "ECRPORTAL_LOG_LEVEL": "WARNING",
            "ALLOWED_HOSTS": "testserver",
        }
    )
    refresh_bench.fresh_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils.timezone import now

    from tasks_app.models import Credential, Membership, Role, TaskConfig, TaskRun, Team
    from tests.factories import PASSWORD, make_user

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)  # DEBUG=0, as deployed
    refresh_bench.seed()
    at = now()
    credential = Credential.objects.create(
        group="bench",
        token="",
        username="AWS",
        expires_at=at + timedelta(hours=9),
        proxy_endpoint="https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    )
    TaskConfig.objects.update(
        credential=credential,
        last_run_ok=True,
        refresh_due_at=at + timedelta(hours=3),
    )
    runs = []
    for task_id in TaskConfig.objects.values_list("id", flat=True):
        for hours in (15, 3):
            started = at - timedelta(hours=hours)
            runs.append(
                TaskRun(
                    task_id=task_id,
                    trigger="schedule",
                    outcome="succeeded",
                    started=started,
                    finished=started,
                    token_expires_at=started + timedelta(hours=12),
                )
            )
    TaskRun.objects.bulk_create(runs, batch_size=5000)
    user = make_user("bench")
    Membership.objects.create(team=Team.objects.get(), user=user, role=Role.EDITOR)
    client = Client()
    assert client.login(username="bench", password=PASSWORD)
    tasks = TaskConfig.objects.count()
    print(f"{tasks} tasks, {len(runs)} runs in the timeline's window")
    for label, query in [("unfiltered", {}), ("status=failing (none)", {"status": "failing"})]:
        client.get("/", query)  # warm up
        queries = []

        def count(run, sql, *args, queries=queries):
            started = time.perf_counter()
            try:
                return run(sql, *args)
            finally:
                queries.append((time.perf_counter() - started, sql))

        with connection.execute_wrapper(count):
            answer = client.get("/", query)
        assert answer.status_code == 200
        times = []
        for _ in range(REQUESTS):
            started = time.perf_counter()
            client.get("/", query)
            times.append(time.perf_counter() - started)
        print(
            f"dashboard {label}: median {statistics.median(times) * 1000:.0f} ms, "
            f"worst {max(times) * 1000:.0f} ms over {REQUESTS} requests; "
            f"{len(queries)} SQL queries; {len(answer.content) // 1024} KiB"
        )
        if os.environ.get("BENCH_QUERIES"):  # the slowest queries of one request
            for seconds, sql in sorted(queries, reverse=True)[:4]:
                print(f"  {seconds * 1000:6.1f} ms  {sql[:150]}")


if __name__ == "__main__":
    main()
