"""Benchmark of the env endpoint, run by hand: .venv/bin/python bench/api.py

In one run, against one gunicorn (the make run configuration) and one moto
server on 127.0.0.1, it measures:

- GET /api/v1/tasks/<id>/env?shell=bash with a job token (the CI path);
- GET /healthz on the same server: a minimal Django view through the same
  middleware, the framework's floor;
- aws ecr get-login-password from the AWS CLI against the same moto endpoint,
  which is what a CI job would run without the portal.

Load comes from wrk (Debian package wrk) with concurrent keep-alive
connections. Targets: env throughput >= 70% of the floor, and a fetch from
the portal >= 50x faster than one from the CLI.

Options (environment): BENCH_SECONDS (10), BENCH_CONNECTIONS (16),
BENCH_CLI_RUNS (10), BENCH_ROUNDS (3: floor and endpoint alternate, medians
reported, since wrk shares the machine's cores with gunicorn), DATABASE_URL
(default: SQLite in a temporary folder).
"""

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
CLI_RUNS = int(os.environ.get("BENCH_CLI_RUNS", "10"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 - loopback only
            return
        except Exception:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def wrk(url: str, header: str | None, connections: int = CONNECTIONS) -> dict:
    threads = min(2, connections)
    args = ["wrk", "--latency", "-t", str(threads), "-c", str(connections), "-d", f"{SECONDS}s"]
    if header:
        args += ["-H", header]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx[1]} error responses\n{out}")

    def ms(label):
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "requests": int(re.search(r"(\d+) requests in", out)[1]),
    }


def median_run(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def setup_portal(env: dict, moto_url: str) -> tuple[str, str]:
    """Migrate, create a team, connector, plan, job, task and token; run the task once."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    code = """
import django, json
django.setup()
from datetime import timedelta
from django.utils.timezone import now
from django.contrib.auth import get_user_model
from tasks_app.models import *
from tasks_app.actor import SYSTEM, Actor
from tasks_app.services.runs import task_run
from tasks_app.services.tokens import token_create
user = get_user_model().objects.create_user("bench", password="x")
team = Team.objects.create(name="Bench", slug="bench")
Membership.objects.create(team=team, user=user, role=Role.ADMIN)
connector = Connector(team=team, name="bench", access_key_id="AKIAIOSFODNN7EXAMPLE",
                      secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
connector.full_clean(); connector.save(); connector.refresh_from_db()
plan = Plan.objects.create(team=team, key="BENCH-PLAN", name="Bench")
job = Job.objects.create(plan=plan, key="JOB1", name="Job")
task = TaskConfig.objects.create(job=job, region="eu-west-1", connector=connector)
run = task_run(task=task, trigger="manual", actor=SYSTEM)
assert run.outcome == "succeeded", run.error_message
# moto's tokens expire on 2015-01-01; give them AWS's 12 hours so that they are served.
expiry = now() + timedelta(hours=12)
Credential.objects.filter(tasks=task).update(expires_at=expiry)
TaskConfig.objects.filter(pk=task.pk).update(expires_at=expiry)
_, raw = token_create(plan=plan, job=job, name="bench", expires_at=None, actor=Actor(user=user))
print(json.dumps({"task": str(task.id), "token": raw}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "ECRPORTAL_AWS_ENDPOINT_URL": moto_url},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    data = json.loads(out.strip().splitlines()[-1])
    return data["task"], data["token"]


def cli_fetches(moto_url: str) -> list[float]:
    aws = shutil.which("aws", path=str(BIN)) or shutil.which("aws")
    if aws is None:
        raise SystemExit("the AWS CLI is missing: make .venv/.dev-installed installs it")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    times = []
    for _ in range(CLI_RUNS):
        started = time.perf_counter()
        subprocess.run(
            [
                aws,
                "ecr",
                "get-login-password",
                "--region",
                "eu-west-1",
                "--endpoint-url",
                moto_url,
            ],
            env=env,
            capture_output=True,
            check=True,
        )
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    sys.path.insert(0, str(ROOT))
    from moto.server import ThreadedMotoServer

    data_dir = Path(tempfile.mkdtemp(prefix="ecrportal-bench-"))
    moto_port, web_port = free_port(), free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    moto_url = f"http://127.0.0.1:{moto_port}"
    from refresh import bench_keys

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ECRPORTAL_")},
        **bench_keys(),
        "ECRPORTAL_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "ecrportal.settings",
        "DEBUG": "0",
        "ECRPORTAL_LOG_LEVEL": "WARNING",
    }
    web = None
    try:
        task_id, token = setup_portal(env, moto_url)
        web_env = {**env, "ECRPORTAL_BIND": f"127.0.0.1:{web_port}"}
        web = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--config",
                "python:ecrportal.gunicorn_conf",
                "ecrportal.wsgi",
                "--access-logfile",
                "/dev/null",
            ],
            cwd=ROOT,
            env=web_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{web_port}"
        wait_http(base + "/healthz")
        env_url = f"{base}/api/v1/tasks/{task_id}/env?shell=bash"
        auth = f"Authorization: Bearer {token}"
        headers = {"Authorization": f"Bearer {token}"}
        request = urllib.request.Request(env_url, headers=headers)  # noqa: S310 - loopback
        body = urllib.request.urlopen(request, timeout=5).read().decode()  # noqa: S310 - loopback
        assert "export bamboo_custom_aws_ecr_password=" in body, body

        # Warm up: the first requests import the API's modules and fill the caches.
        for url, header in ((base + "/healthz", None), (env_url, auth)):
            subprocess.run(
                [
                    "wrk",
                    "-t",
                    "2",
                    "-c",
                    str(CONNECTIONS),
                    "-d",
                    "3s",
                    *(["-H", header] if header else []),
                    url,
                ],
                capture_output=True,
                check=True,
            )
        floors, endpoints, singles = [], [], []
        for _ in range(ROUNDS):
            floors.append(wrk(base + "/healthz", None))
            endpoints.append(wrk(env_url, auth))
            singles.append(wrk(env_url, auth, connections=1))
        floor, endpoint, single = (median_run(runs) for runs in (floors, endpoints, singles))
        shares = sorted(e["rps"] / f["rps"] for f, e in zip(floors, endpoints, strict=True))
        cli = cli_fetches(moto_url)
    finally:
        if web is not None:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=30)
        moto.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    cli_median_ms = statistics.median(cli) * 1000
    share = statistics.median(shares)
    speedup = cli_median_ms / single["p50_ms"]
    rows = [
        ("minimal view (/healthz)", floor),
        ("env endpoint (token)", endpoint),
        ("env endpoint, 1 client", single),
    ]
    print(f"ECR Portal API benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"  {os.cpu_count()} CPUs, gunicorn as in make run, wrk with {CONNECTIONS} keep-alive "
        f"connections, {ROUNDS} rounds of {SECONDS} s, database: "
        f"{os.environ.get('DATABASE_URL', 'SQLite')}"
    )
    print(f"{'':28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for label, row in rows:
        print(f"{label:28} {row['rps']:9.0f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f}")
    print(
        f"{'aws ecr get-login-password':28} {1000 / cli_median_ms:9.2f} {cli_median_ms:8.0f} "
        f"{max(cli) * 1000:8.0f}  (median and slowest of {CLI_RUNS} runs)"
    )
    verdict = "met" if share >= 0.7 else "NOT met"
    spread = ", ".join(f"{x:.0%}" for x in shares)
    print(
        f"env throughput / floor, median of {ROUNDS} rounds ({spread}): {share:.0%} "
        f"(target >= 70%): {verdict}"
    )
    verdict = "met" if speedup >= 50 else "NOT met"
    print(f"CLI fetch / portal fetch, medians: {speedup:.0f}x (target >= 50x): {verdict}")


if __name__ == "__main__":
    main()
