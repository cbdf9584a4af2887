"""The portal's Prometheus metrics, from the official client library (prometheus_client).

Counters and histograms are counted where things happen, in whichever process: web
(gunicorn's workers), worker (Celery's pool) or beat. Each process writes its own files
in prometheus_client's multiprocess mode, under ``settings.METRICS_DIR`` (the variable
PROMETHEUS_MULTIPROC_DIR, set by the settings before this module is imported), named
``<kind>_<role>-<pid>.db``: the role lets each component clear its own files when it
starts (``files_clear``) without touching those of the others sharing the folder, and
``process_dead`` removes a dead process's live gauges. ``/metrics`` merges every file
(``exposition``), so a scrape of any web worker shows the whole machine.

Gauges of the database's state (tasks by status, expiries, due work) are read at scrape
time by a collector the caller passes (``selectors.StateCollector``): they are true
fleet-wide whichever process answers.

Labels have bounded values: a route's URL name (never the path), a cause from
``CAUSES`` or "other", an outcome from a fixed list.
"""

import functools
import glob
import os
import re
import time

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as _values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

# The text format generate_latest writes (0.0.4), as the library names it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
ROLE_VARIABLE = "ECRPORTAL_PROCESS_ROLE"
# web, worker, beat; "other" for any other process (manage.py commands). A process that
# changes its role writes new files from its next write on (tests give each test its own).
_ROLE = re.compile(r"[a-z][a-z0-9]{0,30}")


# The folders this process made sure exist (a process may write before init_data ran);
# empty while this module loads, so that importing it writes nothing.
_made: set[str] = set()


def _identifier() -> str:
    """This process's name in its files: its role and pid (read at each write: a forked
    child, or a process that learns its role after importing this, starts new files)."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if _made and folder not in _made:
        os.makedirs(folder, exist_ok=True)
        _made.add(folder)
    role = os.environ.get(ROLE_VARIABLE, "other")
    return f"{role if _ROLE.fullmatch(role) else 'other'}-{os.getpid()}"


_values.ValueClass = _values.MultiProcessValue(_identifier)
_made.add("")


def role_set(role: str) -> None:
    """Name this process's component (and its children's) in its metric files."""
    os.environ[ROLE_VARIABLE] = role


def files_clear(role: str) -> int:
    """Remove a component's files (at its start: counters begin again from zero, which
    Prometheus' rate() reads as a restart). Returns how many were removed."""
    removed = 0
    for path in glob.glob(os.path.join(str(settings.METRICS_DIR), f"*_{role}-*.db")):
        os.remove(path)
        removed += 1
    return removed


def process_dead(role: str, pid: int) -> None:
    """A process of this component ended: its live gauges go (its counters stay)."""
    mark_process_dead(f"{role}-{pid}", str(settings.METRICS_DIR))


def exposition(*collectors: Collector) -> bytes:
    """The text format of every process's metrics, and of these scrape-time collectors."""
    registry = CollectorRegistry(auto_describe=False)  # collected once, when scraped
    os.makedirs(settings.METRICS_DIR, exist_ok=True)  # none has counted anything yet
    MultiProcessCollector(registry, path=str(settings.METRICS_DIR))
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


# --- what is counted --------------------------------------------------------------------

AWS_CALLS = Counter(
    "ecrportal_aws_calls",
    "AWS API calls by operation and outcome (ok, throttled, denied, client_error, "
    "server_error, unreachable).",
    ["api", "outcome"],
)
REFRESH_OUTCOMES = Counter(
    "ecrportal_refresh_outcomes",
    "Finished task runs by outcome (succeeded, failed) and cause (the diagnosis code).",
    ["outcome", "cause"],
)
NOTIFICATION_DELIVERIES = Counter(
    "ecrportal_notification_deliveries",
    "Notification delivery attempts by channel and outcome.",
    ["channel", "outcome"],
)
AUTHENTICATION_FAILURES = Counter(
    "ecrportal_authentication_failures",
    "Refused authentications by kind (token, ci_id_token, sign_on, password).",
    ["kind"],
)
API_REQUESTS = Counter(
    "ecrportal_api_requests",
    "API requests by route (URL name) and status code.",
    ["route", "status"],
)
API_LATENCY = Histogram(
    "ecrportal_api_request_duration_seconds",
    "API request latency by route (URL name).",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


@functools.cache
def _beat_tick() -> Gauge:
    # Made at the first tick, not at import: importing this module writes nothing.
    return Gauge(
        "ecrportal_beat_last_tick_timestamp_seconds",
        "When the last refresh tick beat scheduled ran (Unix time); alert on its age.",
        multiprocess_mode="max",
    )


AUTHENTICATION_KINDS = ("token", "ci_id_token", "sign_on", "password", "metrics")


def refresh_counted(*, ok: bool, cause: str = "none", runs: int = 1) -> None:
    """Finished runs; ``cause`` of a failure is bounded by the caller (aws.cause_label, a
    refusal's code)."""
    REFRESH_OUTCOMES.labels("succeeded" if ok else "failed", cause if not ok else "none").inc(runs)


def authentication_failed(kind: str) -> None:
    AUTHENTICATION_FAILURES.labels(kind if kind in AUTHENTICATION_KINDS else "other").inc()


def api_request(route: str, status: int, seconds: float) -> None:
    API_REQUESTS.labels(route, str(status)).inc()
    API_LATENCY.labels(route).observe(seconds)


def beat_ticked() -> None:
    _beat_tick().set(time.time())


def delivery_counted(*, channel: str, state: str, count: int = 1) -> None:
    """Delivery attempts: sent, skipped, failed (the last attempt) or retry (pending)."""
    NOTIFICATION_DELIVERIES.labels(channel, "retry" if state == "pending" else state).inc(count)
