"""The database's state as Prometheus gauges, read when /metrics is scraped.

A fixed number of aggregate queries, whatever the number of tasks (a test counts them):
tasks by status per team and plan (one GROUP BY over the tasks table, no join; teams and
plans named from their own small tables), the credentials in use (one aggregate), and the
oldest due task no claim holds (one row along the refresh_due_at index). True fleet-wide,
whichever web process answers the scrape.
"""

from collections import Counter
from datetime import datetime, timedelta

from django.db.models import Case, Count, Exists, Max, Min, OuterRef, Q, When
from django.utils.timezone import now
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from tasks_app.lib import metrics
from tasks_app.models import Credential, Plan, TaskConfig
from tasks_app.models.tasks import Status, task_status
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

    def _tasks(self, at: datetime) -> GaugeMetricFamily:
        expired = Case(When(credential__expires_at__lte=at, then=True), default=False)
        rows = list(
            TaskConfig.objects.order_by()
            .annotate(
                expired=expired,
                served=Case(When(credential__isnull=True, then=False), default=True),
            )
            .values("job__plan_id", "enabled", "last_run_ok", "served", "expired")
            .annotate(n=Count("id"))
        )
        plans = {
            plan_id: (slug, key)
            for plan_id, slug, key in Plan.objects.order_by().values_list(
                "id", "team__slug", "key"
            )
        }
        # task_status, the one rule, decides each group's status: it needs only whether
        # the credential has expired, which an expiry either side of ``at`` says.
        second = timedelta(seconds=1)
        counts: Counter = Counter()
        for row in rows:
            team, plan = plans.get(row["job__plan_id"], ("", ""))
            expires_at = (
                (at - second if row["expired"] else at + second) if row["served"] else None
            )
            status = task_status(
                enabled=row["enabled"],
                expires_at=expires_at,
                last_run_ok=row["last_run_ok"],
                at=at,
            )
            counts[(team, plan, status)] += row["n"]
        family = GaugeMetricFamily(
            "ecrportal_tasks",
            "Tasks by team, plan and status (ok, failing, expired, never run, disabled).",
            labels=["team", "plan", "status"],
        )
        for team, plan in sorted(set(plans.values())):
            for status in Status.values:
                family.add_metric([team, plan, status], counts.get((team, plan, status), 0))
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
