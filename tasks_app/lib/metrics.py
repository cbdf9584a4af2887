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
time by a collector the caller passes (``services.metrics.StateCollector``): they are true
fleet-wide whichever process answers, and only web's /metrics adds them.

Where web, worker and beat share no folder (Kubernetes: a folder per pod), the worker and
beat serve their own pod's files with ``listener_start`` (ECRPORTAL_METRICS_PORT), behind
the same bearer-token check as web's /metrics (``scrape_refusal``), and Prometheus scrapes
every pod.

Labels have bounded values: a route's URL name (never the path), a cause from
``CAUSES`` or "other", an outcome from a fixed list.
"""

import functools
import glob
import hmac
import logging
import os
import re
import threading
import time
from http import HTTPStatus
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as _values
from prometheus_client.exposition import (
    CONTENT_TYPE_PLAIN_0_0_4,
    ThreadingWSGIServer,
    make_wsgi_app,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

# The text format generate_latest writes (0.0.4), as the library names it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# What a refused scraper is told to send (401's WWW-Authenticate).
CHALLENGE = 'Bearer realm="metrics"'
SCRAPE_METHODS = ("GET", "HEAD")
ROLE_VARIABLE = "ECRPORTAL_PROCESS_ROLE"
# web, worker, beat; "other" for any other process (manage.py commands). A process that
# changes its role writes new files from its next write on (tests give each test its own).
_ROLE = re.compile(r"[a-z][a-z0-9]{0,30}")
log = logging.getLogger(__name__)


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


def _files_registry() -> CollectorRegistry:
    """A registry of every process's files in the metrics folder, read at each collection."""
    registry = CollectorRegistry(auto_describe=False)  # collected once, when scraped
    os.makedirs(settings.METRICS_DIR, exist_ok=True)  # none has counted anything yet
    MultiProcessCollector(registry, path=str(settings.METRICS_DIR))
    return registry


def exposition(*collectors: Collector) -> bytes:
    """The text format of every process's metrics, and of these scrape-time collectors."""
    registry = _files_registry()
    for collector in collectors:
        registry.register(collector)
    return generate_latest(registry)


def scrape_refusal(*, method: str, authorization: str) -> tuple[int, str] | None:
    """May this request read the metrics? The one check of web's /metrics and of the
    worker's and beat's listener: None for a GET (or HEAD) whose Authorization header
    carries ECRPORTAL_METRICS_TOKEN as a bearer token (compared in constant time), else the
    status and the text to answer: 405 for another method, 404 while the token is unset
    (metrics are off), 401 (counted as a refused ``metrics`` authentication)."""
    if method not in SCRAPE_METHODS:
        return 405, "Scrape /metrics with GET."
    expected = settings.METRICS_TOKEN
    if not expected:
        return 404, "Metrics are off: set ECRPORTAL_METRICS_TOKEN to turn them on."
    scheme, _, sent = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        sent.strip().encode(), expected.encode()
    ):
        authentication_failed("metrics")
        return 401, "Send the metrics token: Authorization: Bearer <token>."
    return None


def refusal_headers(status: int) -> list[tuple[str, str]]:
    """What a refusal of scrape_refusal answers with besides its text."""
    if status == 401:
        return [("WWW-Authenticate", CHALLENGE)]
    if status == 405:
        return [("Allow", ", ".join(SCRAPE_METHODS))]
    return []


def _listener_app(scrape):
    """GET /metrics behind the token check; prometheus_client's own WSGI app (``scrape``)
    answers a scraper that passed it."""

    def app(environ, start_response):
        refusal: tuple[int, str] | None
        if environ.get("PATH_INFO") != "/metrics":
            refusal = 404, "Not found: the metrics are at /metrics."
        else:
            refusal = scrape_refusal(
                method=environ.get("REQUEST_METHOD", ""),
                authorization=environ.get("HTTP_AUTHORIZATION", ""),
            )
        if refusal is None:
            return scrape(environ, start_response)
        status, text = refusal
        body = (text + "\n").encode()
        headers = [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
        ]
        headers += refusal_headers(status)
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [body]

    return app


class _QuietHandler(WSGIRequestHandler):
    # A client that connects and sends nothing, or slowly, is dropped after this many
    # seconds rather than holding a thread of the Celery process for good.
    timeout = 10

    def log_message(self, format, *args):  # one line per scrape would drown the worker's log
        pass


# A pod's own address, whichever it is; who may reach it is the NetworkPolicy's to say.
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104


def listener_start(port: int, *, address: str = EVERY_INTERFACE) -> WSGIServer | None:
    """Serve GET /metrics on ``address:port`` from a daemon thread of this process (the
    Celery worker's or beat's main process), for a pod whose metrics folder web does not
    read. Returns the server (``shutdown()`` stops it), or None, logged, when the port
    cannot be had: the worker goes on without its metrics rather than stop."""
    app = _listener_app(make_wsgi_app(_files_registry()))
    try:
        server = make_server(address, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
    except OSError as e:
        log.error("Metrics listener not started: cannot listen on %s:%d (%s).", address, port, e)
        return None
    threading.Thread(target=server.serve_forever, name="metrics-listener", daemon=True).start()
    log.info("Metrics listener on %s:%d (GET /metrics, bearer token).", address, port)
    return server


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
    "Refused authentications by kind (token, ci_id_token, sign_on, password, metrics).",
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
