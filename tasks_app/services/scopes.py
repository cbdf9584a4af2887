"""Which generated variables a consumer sees (SPEC §5).

- A job sees the variables its own tasks wrote with local scope, plus every
  result-scoped variable of its plan.
- A plan (deployments, plan-level consumers) sees result-scoped variables only.
"""

from django.db.models import Q, QuerySet
from django.utils.timezone import now

from tasks_app.models import Job, Plan, Scope, VariableResult


def _ordered(results: QuerySet) -> QuerySet:
    return results.select_related("task", "task__job").order_by(
        "task__job__stage", "task__job__key", "task__position", "task__created", "key"
    )


def variables_for_job(job: Job, *, valid_only: bool = False) -> QuerySet[VariableResult]:
    results = VariableResult.objects.filter(
        Q(job=job, scope=Scope.LOCAL) | Q(plan_id=job.plan_id, scope=Scope.RESULT)
    )
    if valid_only:
        results = results.filter(expires_at__gt=now())
    return _ordered(results)


def variables_for_plan(plan: Plan, *, valid_only: bool = False) -> QuerySet[VariableResult]:
    results = VariableResult.objects.filter(plan=plan, scope=Scope.RESULT)
    if valid_only:
        results = results.filter(expires_at__gt=now())
    return _ordered(results)
