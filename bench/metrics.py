"""Benchmark of one /metrics scrape's database time, run by hand: .venv/bin/python bench/metrics.py

Seeds the scheduled-refresh benchmark's data (bench/refresh.py) at BENCH_TASKS tasks
(100,000 here) over BENCH_GROUPS credential groups (2,000) in PostgreSQL, gives half the
tasks a credential (one in ten of those expiring within 2 hours, one in fifty expired),
makes one task in 50 failing and one in 100 disabled, leaves one in 20 due and unclaimed,
then collects the database's gauges (services/metrics.py: StateCollector) BENCH_SCRAPES
times (20). Prints the median and worst database time of a scrape (the sum of its queries'
times, measured around each query's execution), the whole scrape's time (queries, Python,
the text), the queries per scrape and the body's size, and the issue 25 target (database
time <= 50 ms). Options: BENCH_TASKS, BENCH_GROUPS, BENCH_SCRAPES, BENCH_DATABASE_URL
(dropped and created; default ecrportal_bench_metrics).
"""

import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("BENCH_TASKS", "100000")
os.environ.setdefault("BENCH_GROUPS", "2000")
os.environ.setdefault(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ecrportal_bench_metrics"
)
SCRAPES = int(os.environ.get("BENCH_SCRAPES", "20"))


def main() -> None:
    import refresh as refresh_bench

    os.environ.update(refresh_bench.in_process_environ("metrics"))
    refresh_bench.fresh_database()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils.timezone import now

    from tasks_app.models import Credential, TaskConfig
    from tasks_app.services.metrics import StateCollector, metrics_text

    call_command("migrate", verbosity=0)
    seeded = time.perf_counter()
    refresh_bench.seed()
    at = now()
    credentials = Credential.objects.bulk_create(
        Credential(
            group=f"bench-{i}",
            token="",
            username="AWS",
            expires_at=at + (timedelta(minutes=90) if i % 10 == 0 else timedelta(hours=9)),
            proxy_endpoint="https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
        )
        for i in range(refresh_bench.GROUPS)
    )
    ids = list(TaskConfig.objects.order_by("id").values_list("id", flat=True))
    served = ids[0::2]
    for j, credential in enumerate(credentials):
        TaskConfig.objects.filter(id__in=served[j :: len(credentials)]).update(
            credential=credential, last_run_ok=True
        )
    TaskConfig.objects.filter(id__in=ids[1::50]).update(last_run_ok=False)
    TaskConfig.objects.filter(id__in=ids[3::100]).update(enabled=False)
    TaskConfig.objects.filter(id__in=ids[5::20]).update(refresh_due_at=at - timedelta(minutes=3))
    Credential.objects.filter(id__in=[c.id for c in credentials[7::50]]).update(
        expires_at=at - timedelta(minutes=5)
    )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    print(f"seeded {len(ids):,} tasks in {time.perf_counter() - seeded:.0f} s")

    db_times: list[float] = []
    scrape_times: list[float] = []
    queries: list[int] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent.append(time.perf_counter() - started)

    size = 0
    per_query: list[list[float]] = []
    for _ in range(SCRAPES):
        spent: list[float] = []
        with connection.execute_wrapper(timed):
            started = time.perf_counter()
            list(StateCollector().collect())
            db_times.append(sum(spent))
            queries.append(len(spent))
            per_query.append(spent)
        started = time.perf_counter()
        size = len(metrics_text())
        scrape_times.append(time.perf_counter() - started)

    def ms(values, f) -> str:
        return f"{f(values) * 1000:.1f} ms"

    print(
        f"{len(ids):,} tasks, {refresh_bench.GROUPS:,} groups, {SCRAPES} scrapes: "
        f"database time median {ms(db_times, statistics.median)}, worst "
        f"{ms(db_times, max)}; whole scrape median {ms(scrape_times, statistics.median)}; "
        f"{max(queries)} queries; {size:,} bytes"
    )
    medians = [statistics.median(q[i] for q in per_query) * 1000 for i in range(min(queries))]
    print("each query's median: " + ", ".join(f"{m:.1f} ms" for m in medians))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"load average during the run: {load} ({os.cpu_count()} cores)")
    median = statistics.median(db_times) * 1000
    print(f"target: database time <= 50 ms: {'met' if median <= 50 else 'NOT met'}")


if __name__ == "__main__":
    main()
