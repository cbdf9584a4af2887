"""Readiness checks behind /readyz."""

import threading
import time
from dataclasses import dataclass
from datetime import timedelta

from django.db import DatabaseError, connection
from django.utils.timezone import now

from tasks_app.lib.celery_queue import CANARY, PoolLoad, celery_task, workers_load
from tasks_app.models import CanaryPing

POLL_SECONDS = 0.05
# The workers are asked how busy they are when the canary still waits after this share of
# the timeout, and their answers are awaited for at most this long.
BUSY_ASK_AFTER = 1 / 3
BUSY_REPLY_SECONDS = 1.0
# Pings older than this are of no more use to anyone.
CANARY_RETENTION = timedelta(hours=1)


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str  # for anyone: names no host
    ms: int
    workers: tuple[str, ...] = ()  # the workers that answered, by name (celery@host)


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def database_check() -> Check:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as e:
        return Check(False, f"database unreachable ({e.__class__.__name__})", _elapsed_ms(started))
    return Check(True, f"{connection.vendor} answered", _elapsed_ms(started))


def worker_check(*, timeout: float) -> Check:
    """Send a canary task through the broker and wait for a worker to answer it.

    This proves that a worker consumes from the queue, not merely that a worker
    process exists. The message expires with the wait, so canaries sent while
    no worker runs do not pile up work for the next one.

    A worker whose every process is inside a task (refreshes waiting on a slow AWS) cannot
    take the canary until one ends, and is not down: if the canary still waits after a
    third of the timeout, the workers are asked how busy they are (their consumer answers,
    not their pool), and when every worker that answers is busy in all its processes, the
    portal is ready. A worker that answers with an idle process must take the canary: one
    connected but consuming nothing is not ready; one that is gone answers nothing.
    """
    canary = celery_task(CANARY)
    started = time.monotonic()
    ping = CanaryPing.objects.create()
    try:
        canary.apply_async((str(ping.id),), expires=timeout, retry=False)
    except Exception as e:  # any broker failure means "not ready"
        return Check(False, f"broker unreachable ({e.__class__.__name__})", _elapsed_ms(started))

    deadline = started + timeout
    ask_at: float | None = started + timeout * BUSY_ASK_AFTER
    while (now := time.monotonic()) < deadline:
        answered = CanaryPing.objects.filter(id=ping.id).values_list("answered_by", "answered_at")
        worker, answered_at = answered.get()
        if answered_at:
            return Check(True, "a worker answered", _elapsed_ms(started), (worker,))
        if ask_at is not None and now >= ask_at:
            ask_at = None  # once
            loads = _every_worker_busy(timeout=min(BUSY_REPLY_SECONDS, deadline - now))
            if loads:
                busy, processes = sum(x.busy for x in loads), sum(x.processes for x in loads)
                detail = (
                    f"every worker busy in tasks: {len(loads)} worker"
                    f"{'s' if len(loads) > 1 else ''}, {busy} of {processes} processes"
                )
                names = tuple(f"{x.worker} ({x.busy} of {x.processes} processes)" for x in loads)
                return Check(True, detail, _elapsed_ms(started), names)
        time.sleep(POLL_SECONDS)
    return Check(False, f"no worker answered within {timeout:g} s", _elapsed_ms(started))


def _every_worker_busy(*, timeout: float) -> list[PoolLoad] | None:
    """Every worker's load, by name, when at least one worker answered and every one that
    did has all its processes inside a task; else None."""
    try:
        loads = workers_load(timeout=max(timeout, 0.1))
    except Exception:  # the broker went away meanwhile: the canary's wait says the rest
        return None
    if not loads or not all(load.full for load in loads):
        return None
    return sorted(loads, key=lambda load: load.worker)


_readiness_lock = threading.Lock()
_last_readiness: tuple[float, dict[str, Check]] | None = None


def readiness(*, timeout: float) -> dict[str, Check]:
    """Database and worker checks. Requests that arrive while a check runs share its result.

    /readyz is public: without this, a burst of probes would each write a canary
    row and send a message. With it, one web process runs one check at a time.

    Not a cache (tasks_app/lib/caches.py has those): a result is never kept for a probe
    that arrives after it was made, so /readyz never answers from before the probe.
    """
    global _last_readiness
    arrived = time.monotonic()
    with _readiness_lock:
        if _last_readiness is not None and _last_readiness[0] >= arrived:
            return _last_readiness[1]
        database = database_check()
        if database.ok:
            worker = worker_check(timeout=timeout)
        else:
            worker = Check(False, "not checked: the canary needs the database", 0)
        checks = {"database": database, "worker": worker}
        _last_readiness = (time.monotonic(), checks)
        return checks


def canary_answer(*, ping_id: str, worker: str) -> bool:
    """Mark a canary as answered (once). Returns False if it is gone or answered already."""
    return bool(
        CanaryPing.objects.filter(id=ping_id, answered_at=None).update(
            answered_at=now(), answered_by=worker[:255]
        )
    )


def canaries_purge() -> int:
    deleted, _ = CanaryPing.objects.filter(created__lt=now() - CANARY_RETENTION).delete()
    return deleted
