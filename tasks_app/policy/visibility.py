"""Who sees a task's variables (SPEC §5, §8.4): one rule, as a predicate and as a query.

A consumer is a plan or one of its jobs (a CI job, a deployment, an API token bound to
either). A job sees every task of its own job, whatever its scope, and the result-scoped
tasks of its plan; a plan sees its result-scoped tasks only. Access control for people
(team roles) is in policy/access.py; this is what a binding sees.

`task_visible` decides over plain values (the token path's cached rows use it);
`visible_tasks` is the same rule as a filter for querysets of TaskConfig; `seen_together`
says whether some consumer sees two tasks at once (their variables must not collide).
"""

from dataclasses import dataclass

from django.db.models import Q

from tasks_app.models import Scope

NOT_VISIBLE = "No such task."


@dataclass(frozen=True)
class Viewer:
    """A consumer: a plan, or one of its jobs (job_id set)."""

    plan_id: object
    job_id: object = None

    @classmethod
    def of_token(cls, token) -> "Viewer":
        return cls(plan_id=token.plan_id, job_id=token.job_id)


def task_visible(viewer: Viewer, *, plan_id, job_id, scope: str) -> bool:
    """Whether the viewer sees the variables of a task of this job (of this plan)."""
    if viewer.job_id is not None and job_id == viewer.job_id:
        return True
    return plan_id == viewer.plan_id and scope == Scope.RESULT


def visible_tasks(viewer: Viewer) -> Q:
    """task_visible as a filter on TaskConfig."""
    seen = Q(job__plan_id=viewer.plan_id, scope=Scope.RESULT)
    if viewer.job_id is not None:
        seen |= Q(job_id=viewer.job_id)
    return seen


def seen_together(*, job_a, scope_a: str, job_b, scope_b: str) -> bool:
    """Whether some consumer sees both tasks (of one plan): any job sees a result-scoped
    task, so only two local ones of different jobs are never seen together."""
    if scope_a == Scope.LOCAL and scope_b == Scope.LOCAL:
        return job_a == job_b
    return True


def scope_within(viewer: Viewer, *, plan_id, job_id=None) -> bool:
    """Whether the viewer may ask for the variables of this plan (or this job of it): its
    own plan, and only its own job."""
    if plan_id != viewer.plan_id:
        return False
    return job_id is None or job_id == viewer.job_id
