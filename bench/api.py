"""Benchmark of the env endpoint, run by hand: .venv/bin/python bench/api.py

One gunicorn (the make run configuration: 2 workers x 4 threads, with at most 8
connections each so that the load reaches both), one moto server on
127.0.0.1 and one database (SQLite in a temporary folder, or DATABASE_URL). It measures
GET /api/v1/tasks/<id>/env?shell=bash with job tokens, the CI path, in three cases:

1. cache hit: one task and one token requested over and over by wrk (keep-alive
   connections): after the first request, each web process serves it from its
   ECRPORTAL_API_CACHE_SECONDS cache;
2. cache miss: 1,000 tasks in 200 jobs, a job token each; every task is fetched once
   per round, with its job's token, in a random order, by wrk over the same connections
   (a Lua script sends each request once): each request reads its task and credential
   from the database and decrypts the token (the token lookup is often cached: its job's
   other tasks may have used it moments before). Each round starts
   ECRPORTAL_API_CACHE_SECONDS + 1 s after the last request for these tasks, so that the
   caches hold none of them;
3. whole process, as a CI step runs it: `curl` for the env of a task (neither it nor
   its token in a cache), against `curl` for /healthz (the floor: a process start, a TCP
   connection and the smallest Django answer), and `aws ecr get-login-password` against
   moto (what the job would run without the portal).

GET /healthz, a minimal Django view through the same middleware, is the floor of 1 and 2.
The figure compared is the CPU time the web processes spend per request, from their own
counters (/proc/<pid>/stat: utime + stime of the gunicorn master and workers, divided by
the requests served): on 2 shared cores it is stable where requests per second are not,
since the load generator competes for the same cores. Rounds alternate floor and case;
medians are reported with the spread of the rounds, and the share of the CPU each worker
spent, to show that the connections reached every worker.

Targets (issue 14): CPU per request, cache hit >= 80% and cache miss >= 50% of /healthz's
throughput (i.e. floor CPU / case CPU); whole process, curl -> env within 1.3x of
curl -> /healthz, and >= 40x faster than the AWS CLI; each gunicorn worker <= 120 MiB.

Options (environment): BENCH_SECONDS (wrk run, 8), BENCH_CONNECTIONS (16), BENCH_ROUNDS
(5), BENCH_PROCESS_RUNS (20 curl and 10 CLI runs: this many, and half as many),
DATABASE_URL (default: SQLite in a temporary folder).
"""

import json
import logging
import os
import random
import re
import shlex
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
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "16"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
PROCESS_RUNS = int(os.environ.get("BENCH_PROCESS_RUNS", "20"))
CACHE_SECONDS = 5
JOBS, TASKS_PER_JOB = 200, 5
PLAN_TASKS = 50  # the plan-wide registry formats: one plan of this many tasks
ID_TOKENS = 300  # ID tokens sent per round, each once (issue 17)
# gunicorn lets whichever worker wakes first accept most of a burst of new connections.
# Capped at this many each, wrk's connections spread over both workers (2 x 4 threads in
# make run); gthread keeps alive at most (worker connections - threads) of them and closes
# the others after each answer, so the cap leaves room for half of them in each worker:
# those a worker closes reconnect, and settle where there is room.
WORKER_CONNECTIONS = CONNECTIONS // 2 + 4
ACCESS_KEY, SECRET_KEY = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


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


class Web:
    """The gunicorn processes, and what their counters say."""

    def __init__(self, process: subprocess.Popen):
        from refresh import cpu_seconds, process_tree, rss_mib

        self.process = process
        self._tree, self._cpu, self._rss = process_tree, cpu_seconds, rss_mib

    def pids(self) -> list[int]:
        return self._tree(self.process.pid)

    def workers(self) -> list[int]:
        return [pid for pid in self.pids() if pid != self.process.pid]

    def cpu(self) -> dict[int, float]:
        return {pid: self._cpu(pid) for pid in self.pids()}

    def system_cpu(self) -> float:
        return sum(self._cpu(pid, user=False) for pid in self.pids())

    def rss(self) -> dict[int, float]:
        return {pid: self._rss(pid) for pid in self.workers()}


class Measured:
    def __init__(self, requests, rps, before, after, system, p50_ms):
        """`rps`: None when wrk's own figure means nothing (it waits out its duration)."""
        self.requests = requests
        self.extra = self.unanswered = 0
        self.rps = float("nan") if rps is None else rps
        self.p50_ms = p50_ms
        spent = {pid: after.get(pid, 0) - before.get(pid, 0) for pid in after}
        self.cpu_ms = sum(spent.values()) / requests * 1000
        total = sum(spent.values()) or 1
        self.system_share = system / total  # of the CPU spent, in the kernel
        self.worker_shares = sorted((v / total for v in spent.values()), reverse=True)


def error_responses(out: str) -> int:
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return int(non2xx[1]) if non2xx else 0


def run_wrk(
    web: Web, args: list[str], what: str, *, errors_allowed: bool = False
) -> tuple[str, dict, dict, float, float]:
    """wrk with CONNECTIONS connections for SECONDS, and the web processes' CPU around it:
    its output, the counters before and after, the kernel's CPU, the median latency (ms)."""
    command = ["wrk", "--latency", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{SECONDS}s"]
    before, system = web.cpu(), web.system_cpu()
    out = subprocess.run([*command, *args], capture_output=True, text=True, check=True).stdout
    after, system = web.cpu(), web.system_cpu() - system
    if error_responses(out) and not errors_allowed:
        raise SystemExit(f"{what}: {error_responses(out)} error responses\n{out}")
    value, unit = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out).groups()
    p50 = float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]
    return out, before, after, system, p50


def wrk(web: Web, url: str, header: str | None) -> Measured:
    out, before, after, system, p50 = run_wrk(web, [*(["-H", header] if header else []), url], url)
    requests = int(re.search(r"(\d+) requests in", out)[1])
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    return Measured(requests, rps, before, after, system, p50)


# wrk walks a list of requests, each sent once: every wrk thread takes every n-th line
# of the file, and once its share is sent, delay() holds its connections back. A
# connection that had already asked for its next request then repeats the thread's last
# one (counted as "extra": served from the cache, as a hit).
EACH_ONCE_LUA = r"""
local threads, count = {}, 0
function setup(thread)
  thread:set("id", count)
  count = count + 1
  table.insert(threads, thread)
end
function init(args)
  local n, i = tonumber(args[2]), 0
  todo, sent, extra, got = {}, 0, 0, 0
  for line in io.lines(args[1]) do
    if i % n == id then
      local path, token = line:match("^(%S+)\t(%S+)$")
      todo[#todo + 1] = wrk.format("GET", path, {Authorization = "Bearer " .. token})
    end
    i = i + 1
  end
end
function delay()
  if sent >= #todo then return 3600000 end
  return 0
end
function request()
  sent = sent + 1
  if sent > #todo then
    extra = extra + 1
    return todo[#todo]
  end
  return todo[sent]
end
function response(status, headers, body)
  got = got + 1
end
function done(summary, latency, requests)
  local extra, sent, got = 0, 0, 0
  for _, thread in ipairs(threads) do
    extra = extra + thread:get("extra")
    sent = sent + thread:get("sent")
    got = got + thread:get("got")
  end
  io.write(string.format("EXTRA %d SENT %d GOT %d\n", extra, sent, got))
end
"""


def wrk_each_once(
    web: Web,
    requests: list[tuple[str, str]],
    base: str,
    hit_ms: float,
    *,
    replays_refused: bool = False,
):
    """Every (path, token) once, in the given order, over the same wrk connections as the
    other cases; `hit_ms`, the CPU of a cache hit, is taken off for each extra request.
    `replays_refused`: an extra request repeats a single-use ID token, so its 401 is right
    (and it costs less than an accepted one; no CPU is taken off for it)."""
    folder = Path(tempfile.mkdtemp(prefix="ecrportal-bench-wrk-"))
    try:
        (folder / "each.lua").write_text(EACH_ONCE_LUA)
        (folder / "requests").write_text("".join(f"{p}\t{t}\n" for p, t in requests))
        args = ["-s", str(folder / "each.lua"), base, "--", str(folder / "requests"), "2"]
        out, before, after, system, p50 = run_wrk(
            web, args, "cache-miss requests", errors_allowed=replays_refused
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    extra, sent, answered = map(int, re.search(r"EXTRA (\d+) SENT (\d+) GOT (\d+)", out).groups())
    if error_responses(out) > (extra if replays_refused else 0):
        raise SystemExit(f"{error_responses(out)} error responses, {extra} replays:\n{out}")
    # A connection gunicorn closes as wrk stops may take an answer with it: a few at most.
    if sent != len(requests) + extra or answered < len(requests) - CONNECTIONS:
        raise SystemExit(f"{answered} of {len(requests)} answered within {SECONDS} s:\n{out}")
    measured = Measured(len(requests), None, before, after, system, p50)
    measured.cpu_ms -= extra * hit_ms / len(requests)
    measured.extra = extra
    measured.unanswered = sent - answered
    return measured


def portal_env(data_dir: Path, issuer, *, cache_seconds: int) -> dict:
    """The environment of the benchmarked portal: its own data folder and keys, quiet
    logs, the API cache, and the CI issuer (tests/oidc_issuer.py) it trusts."""
    from refresh import bench_keys

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("ECRPORTAL_")},
        **bench_keys(),
        "ECRPORTAL_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "ecrportal.settings",
        "DEBUG": "0",
        "ECRPORTAL_LOG_LEVEL": "WARNING",
        "ECRPORTAL_API_CACHE_SECONDS": str(cache_seconds),
        "BENCH_ISSUER": issuer.url,
        "ECRPORTAL_OIDC_CA_BUNDLE": str(issuer.ca_bundle),
    }


def setup_portal(env: dict, moto_url: str) -> dict:
    """Migrate; one team, connector and plan; JOBS jobs of TASKS_PER_JOB tasks, a job token
    each; one run, whose credential every task then shares (as a refresh of their group
    leaves them), valid for 12 hours."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
    )
    code = f"""
import django, json
django.setup()
from datetime import timedelta
from django.utils.timezone import now
from django.contrib.auth import get_user_model
from tasks_app.models import *
from tasks_app.identity.actor import SYSTEM, Actor
from tasks_app.services.runs import task_run
from tasks_app.services.tokens import token_create
user = get_user_model().objects.create_user("bench", password="x")
team = Team.objects.create(name="Bench", slug="bench")
Membership.objects.create(team=team, user=user, role=Role.ADMIN)
connector = Connector(team=team, name="bench", access_key_id="{ACCESS_KEY}",
                      secret_access_key="{SECRET_KEY}")
connector.full_clean(); connector.save(); connector.refresh_from_db()
plan = Plan.objects.create(team=team, key="BENCH-PLAN", name="Bench")
jobs = Job.objects.bulk_create(
    [Job(plan=plan, key=f"JOB{{j:03d}}", name="Job") for j in range({JOBS})]
)
tasks = TaskConfig.objects.bulk_create([
    TaskConfig(job=job, region="eu-west-1", connector=connector, namespace=f"custom.aws{{t}}")
    for job in jobs for t in range({TASKS_PER_JOB})
])
run = task_run(task=tasks[0], trigger="manual", actor=SYSTEM)
assert run.outcome == "succeeded", run.error_message
credential = TaskConfig.objects.get(pk=tasks[0].pk).credential
# moto's tokens expire on 2015-01-01; give them AWS's 12 hours so that they are served.
expiry = now() + timedelta(hours=12)
Credential.objects.filter(pk=credential.pk).update(expires_at=expiry)
TaskConfig.objects.update(credential=credential, last_run_ok=True)
out = {{"jobs": [], "plans": {{}}}}
# Plans for the registry formats: one with {PLAN_TASKS} result tasks, each for another
# registry (account) of the same credential, and one with a single task.
for key, count in (("BENCH-FIFTY", {PLAN_TASKS}), ("BENCH-ONE", 1)):
    other = Plan.objects.create(team=team, key=key, name=key)
    other_job = Job.objects.create(plan=other, key="JOB", name="Job")
    TaskConfig.objects.bulk_create([
        TaskConfig(job=other_job, region="eu-west-1", connector=connector, scope="result",
                   namespace=f"reg{{i}}", registry_id=str(100000000000 + i),
                   credential=credential, last_run_ok=True)
        for i in range(count)
    ])
    _, raw = token_create(plan=other, job=None, name="bench", expires_at=None,
                          actor=Actor(user=user))
    out["plans"][key] = raw
for job in jobs:
    _, raw = token_create(
        plan=plan, job=job, name="bench", expires_at=None, actor=Actor(user=user)
    )
    ids = [str(t.id) for t in tasks if t.job_id == job.id]
    out["jobs"].append({{"token": raw, "tasks": ids}})
# Workload identity (issue 17): ID tokens of a CI issuer act as the first job's token.
import os
trusted = TrustedIssuer.objects.create(issuer=os.environ["BENCH_ISSUER"], name="Bench CI")
TrustRule.objects.create(team=team, plan=plan, job=jobs[0], issuer=trusted,
                         audience="https://ecr-portal.example.com",
                         conditions={{"repository": "acme/web"}}, name="bench")
print(json.dumps(out))
"""
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "ECRPORTAL_AWS_ENDPOINT_URL": moto_url},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def process_times(
    commands: list[list[str]], env: dict | None = None, *, may_fail: bool = False
) -> list[float]:
    """Wall time of each command, run one after the other by a small bash loop (its
    EPOCHREALTIME needs no process): a fork of this large Python process per run would
    add its own milliseconds to each."""
    failed = "true" if may_fail else '{ echo "failed: $?" >&2; exit 1; }'
    script = "\n".join(
        "s=$EPOCHREALTIME; " + " ".join(shlex.quote(a) for a in args) + " >/dev/null 2>&1 "
        f'|| {failed}; echo "$s $EPOCHREALTIME"'
        for args in commands
    )
    out = subprocess.run(
        ["bash", "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    return [
        float(end) - float(start) for start, end in (line.split() for line in out.splitlines())
    ]


def cli_fetches(moto_url: str) -> list[float]:
    aws = shutil.which("aws", path=str(BIN)) or shutil.which("aws")
    if aws is None:
        raise SystemExit("the AWS CLI is missing: make .venv/.dev-installed installs it")
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    args = [aws, "ecr", "get-login-password", "--region", "eu-west-1", "--endpoint-url", moto_url]
    return process_times([args] * max(1, PROCESS_RUNS // 2), env)


def spread(values: list[float], fmt: str) -> str:
    low, mid, high = (fmt.format(v) for v in (min(values), statistics.median(values), max(values)))
    return f"{mid} ({low}-{high})"


def main() -> None:
    for tool in ("wrk", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: apt-get install {tool}")
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from moto.server import ThreadedMotoServer

    from tests.oidc_issuer import Issuer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's access log

    data_dir = Path(tempfile.mkdtemp(prefix="ecrportal-bench-"))
    moto_port, web_port = free_port(), free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
    moto.start()
    moto_url = f"http://127.0.0.1:{moto_port}"
    issuer = Issuer(data_dir)
    env = portal_env(data_dir, issuer, cache_seconds=CACHE_SECONDS)
    process = None
    try:
        data = setup_portal(env, moto_url)
        process = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "--config",
                "python:ecrportal.gunicorn_conf",
                "ecrportal.wsgi",
                "--access-logfile",
                "/dev/null",
                "--worker-connections",
                str(WORKER_CONNECTIONS),
            ],
            cwd=ROOT,
            env={**env, "ECRPORTAL_BIND": f"127.0.0.1:{web_port}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        web = Web(process)
        base = f"http://127.0.0.1:{web_port}"
        wait_http(base + "/healthz")
        first = data["jobs"][0]
        hit_path = f"/api/v1/tasks/{first['tasks'][0]}/env?shell=bash"
        hit_header = f"Authorization: Bearer {first['token']}"
        request = urllib.request.Request(  # noqa: S310 - loopback
            base + hit_path, headers={"Authorization": f"Bearer {first['token']}"}
        )
        body = urllib.request.urlopen(request, timeout=5).read().decode()  # noqa: S310
        assert "export bamboo_custom_aws0_ecr_password=" in body, body
        # Warm up: the first requests import the API's modules in each worker.
        for url, header in ((base + "/healthz", None), (base + hit_path, hit_header)):
            wrk(web, url, header)
        pairs = [(t, job["token"]) for job in data["jobs"] for t in job["tasks"]]
        fifty = f"Authorization: Bearer {data['plans']['BENCH-FIFTY']}"
        one = f"Authorization: Bearer {data['plans']['BENCH-ONE']}"
        formats = {
            f"plan docker-config, {PLAN_TASKS} tasks": (
                base + "/api/v1/plans/BENCH-FIFTY/docker-config",
                fifty,
            ),
            f"kubernetes-secret, {PLAN_TASKS} tasks": (
                base + "/api/v1/kubernetes-secret?name=ecr-pull&namespace=ci",
                fifty,
            ),
            "plan docker-config, 1 task": (base + "/api/v1/plans/BENCH-ONE/docker-config", one),
        }
        for url, header in formats.values():
            wrk(web, url, header)
        formatted: dict[str, list] = {label: [] for label in formats}
        id_task = data["jobs"][0]["tasks"][0]
        # Warm up the ID-token path too: each worker fetches the issuer's discovery document
        # and JWKS once (kept an hour); the target is for a cached JWKS (issue 17).
        wrk_each_once(
            web,
            [(f"/api/v1/tasks/{id_task}/variables", issuer.token()) for _ in range(ID_TOKENS)],
            base,
            0.0,
            replays_refused=True,
        )
        id_rounds: list = []
        floors, hits, misses = [], [], []
        for n in range(ROUNDS):
            floors.append(wrk(web, base + "/healthz", None))
            hits.append(wrk(web, base + hit_path, hit_header))
            for label, (url, header) in formats.items():
                formatted[label].append(wrk(web, url, header))
            # Each ID token once (a jti is single use): signed ahead, sent in order.
            id_rounds.append(
                wrk_each_once(
                    web,
                    [
                        (f"/api/v1/tasks/{id_task}/variables", issuer.token())
                        for _ in range(ID_TOKENS)
                    ],
                    base,
                    0.0,
                    replays_refused=True,
                )
            )
            time.sleep(CACHE_SECONDS + 1)  # the caches forget what they held
            random.Random(n).shuffle(pairs)  # noqa: S311 - an order, not a secret
            misses.append(
                wrk_each_once(
                    web,
                    [(f"/api/v1/tasks/{t}/env?shell=bash", k) for t, k in pairs],
                    base,
                    hits[-1].cpu_ms,
                )
            )
        rss = web.rss()
        time.sleep(CACHE_SECONDS + 1)
        # One task of each job: neither the task nor its token is in a cache.
        curl_tasks = [(job["tasks"][-1], job["token"]) for job in data["jobs"]]

        curl = ["curl", "-sf", "-o", "/dev/null"]
        # curl's own start: a connection refused at once, no server involved.
        closed = f"http://127.0.0.1:{free_port()}/"
        curl_start = process_times([[*curl, closed]] * PROCESS_RUNS, may_fail=True)
        curl_floor = process_times([[*curl, base + "/healthz"]] * PROCESS_RUNS)
        curl_env = process_times(
            [
                [
                    *curl,
                    "-H",
                    f"Authorization: Bearer {token}",
                    f"{base}/api/v1/tasks/{t}/env?shell=bash",
                ]
                for t, token in curl_tasks[:PROCESS_RUNS]
            ]
        )
        cli = cli_fetches(moto_url)
    finally:
        if process is not None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        moto.stop()
        issuer.stop()
        shutil.rmtree(data_dir, ignore_errors=True)

    print(f"ECR Portal API benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"  {os.cpu_count()} CPUs; gunicorn as in make run; database "
        f"{os.environ.get('DATABASE_URL', 'SQLite')}; {ROUNDS} rounds, medians (min-max)"
    )
    print(
        f"{'':34} {'CPU ms/request':>22} {'share of floor':>20} {'req/s':>7} {'p50 ms':>7} "
        "worker CPU split"
    )
    results = {}
    for label, runs in (
        ("/healthz (floor)", floors),
        (f"env, cache hit ({CONNECTIONS} conns)", hits),
        (f"env, cache miss ({CONNECTIONS} conns)", misses),
        *formatted.items(),
        ("ID token, each once (issue 17)", id_rounds),
    ):
        shares = [f.cpu_ms / r.cpu_ms for f, r in zip(floors, runs, strict=True)]
        results[label] = statistics.median(shares)
        split = "/".join(f"{s:.0%}" for s in runs[len(runs) // 2].worker_shares)
        rps = statistics.median(r.rps for r in runs)
        rps_text = f"{rps:7.0f}" if rps == rps else "      -"  # no figure for the misses
        print(
            f"{label:34} {spread([r.cpu_ms for r in runs], '{:.2f}'):>22} "
            f"{spread(shares, '{:.0%}'):>20} {rps_text} "
            f"{statistics.median(r.p50_ms for r in runs):7.2f} {split}"
        )
    print(
        f"requests per miss round: {misses[0].requests} (each task once, random order); "
        "extra requests (a hit each, their CPU taken off) / unanswered by each round's end: "
        + " ".join(f"{m.extra}/{m.unanswered}" for m in misses)
    )
    print(
        "CPU ms/request by round: "
        + "; ".join(
            f"{label} " + " ".join(f"{r.cpu_ms:.2f} ({r.system_share:.0%} sys)" for r in runs)
            for label, runs in (("floor", floors), ("hit", hits), ("miss", misses))
        )
    )
    floor_ms = statistics.median(curl_floor) * 1000
    env_ms = statistics.median(curl_env) * 1000
    cli_ms = statistics.median(cli) * 1000
    print("whole process, wall time per run, median (min-max):")
    print(f"  curl, refused connection      {spread([t * 1000 for t in curl_start], '{:.1f}')} ms")
    print(f"  curl /healthz                 {spread([t * 1000 for t in curl_floor], '{:.1f}')} ms")
    print(f"  curl env (a task not fetched) {spread([t * 1000 for t in curl_env], '{:.1f}')} ms")
    print(f"  aws ecr get-login-password    {spread([t * 1000 for t in cli], '{:.0f}')} ms")
    peak = max(rss.values()) if rss else 0.0
    print(
        "gunicorn workers' RSS after the run: "
        + ", ".join(f"{value:.0f} MiB" for value in rss.values())
    )
    docker_share = results[f"plan docker-config, {PLAN_TASKS} tasks"]
    secret_share = results[f"kubernetes-secret, {PLAN_TASKS} tasks"]
    plan_ratio = statistics.median(
        big.cpu_ms / small.cpu_ms
        for big, small in zip(
            formatted[f"plan docker-config, {PLAN_TASKS} tasks"],
            formatted["plan docker-config, 1 task"],
            strict=True,
        )
    )
    id_share = results["ID token, each once (issue 17)"]
    hit = results[f"env, cache hit ({CONNECTIONS} conns)"]
    miss = results[f"env, cache miss ({CONNECTIONS} conns)"]
    checks = [
        (f"cache hit {hit:.0%} of the floor >= 80%", hit >= 0.8),
        (f"cache miss {miss:.0%} >= 50%", miss >= 0.5),
        (f"curl env / curl healthz {env_ms / floor_ms:.2f}x <= 1.3x", env_ms <= 1.3 * floor_ms),
        (f"CLI / curl env {cli_ms / env_ms:.0f}x >= 40x", cli_ms >= 40 * env_ms),
        (f"gunicorn worker {peak:.0f} MiB <= 120 MiB", peak <= 120),
        (f"plan docker-config {docker_share:.0%} of the floor >= 70%", docker_share >= 0.7),
        (f"kubernetes-secret {secret_share:.0%} of the floor >= 70%", secret_share >= 0.7),
        (
            f"plan of {PLAN_TASKS} tasks / plan of 1: {plan_ratio:.2f}x <= 2x",
            plan_ratio <= 2,
        ),
        (f"ID token {id_share:.0%} of the floor >= 50%", id_share >= 0.5),
    ]
    print("targets: " + "; ".join(f"{name} [{'met' if ok else 'MISSED'}]" for name, ok in checks))


if __name__ == "__main__":
    main()
