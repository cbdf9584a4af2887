"""The database's state as Prometheus gauges, read when /metrics is scraped.

A fixed number of aggregate queries, whatever the number of tasks (a test counts them):
tasks by recorded status per team and plan (one GROUP BY over the tasks and their jobs;
teams and plans named from their own small table), the credentials in use (one
aggregate), and the oldest due task no claim holds (one row along the refresh_due_at
index). True fleet-wide, whichever web process answers the scrape. The broker's queues
are counted on one connection to it (lib/celery_queue.queue_depths).
"""

from collections import Counter
from datetime import datetime, timedelta

from django.db.models import Count, Exists, Max, Min, OuterRef, Q
from django.utils.timezone import now
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tasks_app.lib import metrics
from tasks_app.lib.celery_queue import queue_depths
from tasks_app.models import Credential, Plan, TaskConfig
from tasks_app.models.tasks import Status
from tasks_app.services.claims import oldest_unclaimed_due

# A credential with less than this left is "expiring" (the refresh should have replaced it).
EXPIRING = timedelta(hours=2)


class StateCollector(Collector):
    """The gauges read from the database at scrape time."""

    def __init__(self, *, at: datetime | None = None):
        self.at = at

    def collect(self):
        at = self.at or now()
        yield self._tasks(at)
        yield from self._credentials(at)
        waiting = oldest_unclaimed_due(at=at)
        yield GaugeMetricFamily(
            "ecrportal_due_unclaimed_oldest_age_seconds",
            "How long the longest-waiting due task has waited unclaimed (0: none waits).",
            value=max((at - waiting).total_seconds(), 0.0) if waiting else 0.0,
        )
        yield from self._queues()

    def _queues(self):
        depths = queue_depths()
        yield GaugeMetricFamily(
            "ecrportal_broker_up",
            "1 when the broker answered this scrape, 0 when it did not.",
            value=1 if depths is not None else 0,
        )
        family = GaugeMetricFamily(
            "ecrportal_queue_messages",
            "Messages waiting in a Celery queue, not yet taken by a worker: celery "
            "(refreshes, notifications, e-mail) and quick (the refresh tick, the readiness "
            "canary). Absent when the broker does not answer.",
            labels=["queue"],
        )
        for queue, depth in sorted((depths or {}).items()):
            family.add_metric([queue], depth)
        yield family

    def _tasks(self, at: datetime) -> GaugeMetricFamily:
        # The status the portal recorded (a run records its task's at once, the tick the
        # tokens that ran out since: at most a tick behind), disabled tasks apart: one
        # GROUP BY over the tasks and their jobs, no per-row rule, a few rows a plan. The
        # live expiry is the credentials' gauges' (below).
        rows = (
            TaskConfig.objects.order_by()
            .values_list("job__plan_id", "enabled", "recorded_status")
            .annotate(n=Count("id"))
        )
        plans = {
            plan_id: (slug, key)
            for plan_id, slug, key in Plan.objects.order_by().values_list(
                "id", "team__slug", "key"
            )
        }
        counts: Counter = Counter()
        for plan_id, enabled, recorded, n in rows:
            team, plan = plans.get(plan_id, ("", ""))
            counts[(team, plan, recorded if enabled else Status.DISABLED)] += n
        family = GaugeMetricFamily(
            "ecrportal_tasks",
            "Tasks by team, plan and status (ok, failing, expired, never run, disabled) as "
            "last recorded: at once for a run, at the next tick for a token that ran out.",
            labels=["team", "plan", "status"],
        )
        # A status no task of the plan has has no series (thousands of plans times five
        # statuses would be mostly zeros); Prometheus reads an absent series as none.
        for (team, plan, status), n in sorted(counts.items()):
            family.add_metric([team, plan, status], n)
        return family

    def _credentials(self, at: datetime):
        served = Exists(TaskConfig.objects.filter(credential=OuterRef("pk"), enabled=True))
        live = Q(served, expires_at__gt=at)
        found = Credential.objects.aggregate(
            earliest=Min("expires_at", filter=live),
            expiring=Count("id", filter=live & Q(expires_at__lt=at + EXPIRING)),
            last=Max("created"),
        )
        earliest = GaugeMetricFamily(
            "ecrportal_credential_earliest_expiry_seconds",
            "Seconds until the first credential that an enabled task serves expires "
            "(absent when none is valid).",
        )
        if found["earliest"] is not None:
            earliest.add_metric([], (found["earliest"] - at).total_seconds())
        yield earliest
        yield GaugeMetricFamily(
            "ecrportal_credentials_expiring",
            "Valid credentials served to enabled tasks with less than 2 hours left.",
            value=found["expiring"],
        )
        last = GaugeMetricFamily(
            "ecrportal_refresh_last_success_timestamp_seconds",
            "When AWS last answered a refresh with a credential (Unix time).",
        )
        if found["last"] is not None:
            last.add_metric([], found["last"].timestamp())
        yield last


def metrics_text(*, at: datetime | None = None) -> bytes:
    """/metrics' body: every process's counters and the database's gauges."""
    return metrics.exposition(StateCollector(at=at))
