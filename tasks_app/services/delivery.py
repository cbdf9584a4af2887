"""Handing out generated variables: never a stale or expired value (SPEC §5, §7, §8)."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, Q
from django.utils.timezone import now

from tasks_app.actor import Actor
from tasks_app.generated import generated_rank
from tasks_app.models import Job, Plan, Scope, TaskConfig, VariableResult
from tasks_app.services.audit import audit_record


class NotServable(Exception):
    """The variables cannot be handed out now; code and detail say why (API: 409)."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Delivery:
    values: dict[str, str]
    expires_at: datetime | None


def ordered_results(task: TaskConfig) -> list[VariableResult]:
    """The task's variables in the reference document's order."""

    return sorted(task.results.all(), key=lambda r: generated_rank(task.namespace, r.key))


def task_delivery(task: TaskConfig) -> Delivery:
    """The task's variables in clear, or NotServable."""
    if not task.enabled:
        raise NotServable(
            "disabled", f"The task \u201c{task}\u201d is disabled; it has no credentials."
        )
    results = ordered_results(task)
    last_error = f" Last error: {task.last_error}" if task.last_error else ""
    if not results:
        raise NotServable(
            "not_fetched",
            f"The task \u201c{task}\u201d has not fetched credentials yet.{last_error}",
        )
    expires_at = min(r.expires_at for r in results)
    if expires_at <= now():
        raise NotServable(
            "expired",
            f"The credentials of the task \u201c{task}\u201d expired at "
            f"{expires_at:%Y-%m-%dT%H:%M:%SZ}.{last_error}",
        )
    return Delivery({r.key: r.plain_value() for r in results}, expires_at)


def scope_delivery(*, plan: Plan, job: Job | None = None) -> Delivery:
    """What a plan (result scope) or one of its jobs (plus its local scope) may see."""
    visible = Q(scope=Scope.RESULT)
    if job is not None:
        visible |= Q(job=job)
    tasks = (
        TaskConfig.objects.filter(visible, job__plan=plan, enabled=True)
        .select_related("job")
        .prefetch_related(Prefetch("results", queryset=VariableResult.objects.all()))
        .order_by("job__stage", "job__key", "position")
    )
    values, expiries = {}, []
    for task in tasks:
        delivery = task_delivery(task)
        values.update(delivery.values)
        expiries.append(delivery.expires_at)
    return Delivery(values, min(expiries) if expiries else None)


def record_read(*, actor: Actor, task: TaskConfig | None, summary: str, team) -> None:
    """People reading secrets through the API or the CLI leave an audit event."""
    audit_record(
        action="variables.read",
        summary=summary,
        actor=actor,
        team=team,
        obj=task,
    )
