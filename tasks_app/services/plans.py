"""Plans, jobs, input variables and task configurations: saving and deleting, audited."""

import uuid

from django.db import transaction
from django.db.models import Max
from django.utils.timezone import now

from tasks_app.models import Job, Plan, TaskConfig, Variable, VariableResult
from tasks_app.services.audit import audit_record

TASK_AUDITED_FIELDS = [
    "description",
    "enabled",
    "region",
    "region_variable",
    "registry_id",
    "namespace",
    "scope",
    "credentials_source",
    "connector_id",
    "connector_variable",
    "role_arn",
]


def _changes(before: dict, after: dict) -> dict:
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def _record(obj, *, fields: list[str]) -> dict:
    """The fields' values as JSON can hold them (IDs as strings)."""
    values = {f: getattr(obj, f) for f in fields}
    return {f: str(v) if isinstance(v, uuid.UUID) else v for f, v in values.items()}


@transaction.atomic
def plan_save(*, plan: Plan, request) -> Plan:
    creating = plan._state.adding
    before = {} if creating else _record(Plan.objects.get(pk=plan.pk), fields=["key", "name"])
    plan.save()
    after = _record(plan, fields=["key", "name"])
    changes = after if creating else _changes(before, after)
    if changes:
        audit_record(
            action="plan.created" if creating else "plan.updated",
            summary=f"{'Created' if creating else 'Updated'} plan {plan.key}",
            request=request,
            team=plan.team,
            obj=plan,
            changes=changes,
        )
    return plan


@transaction.atomic
def plan_delete(*, plan: Plan, request) -> None:
    audit_record(
        action="plan.deleted",
        summary=f"Deleted plan {plan.key} with its jobs, tasks and variables",
        request=request,
        team=plan.team,
        obj=plan,
        changes={"key": plan.key, "name": plan.name},
    )
    plan.delete()


@transaction.atomic
def job_save(*, job: Job, request) -> Job:
    creating = job._state.adding
    fields = ["key", "name", "stage"]
    before = {} if creating else _record(Job.objects.get(pk=job.pk), fields=fields)
    job.save()
    after = _record(job, fields=fields)
    changes = after if creating else _changes(before, after)
    if changes:
        audit_record(
            action="job.created" if creating else "job.updated",
            summary=f"{'Created' if creating else 'Updated'} job {job.plan.key}-{job.key}",
            request=request,
            team=job.plan.team,
            obj=job,
            changes=changes,
        )
    return job


@transaction.atomic
def job_delete(*, job: Job, request) -> None:
    audit_record(
        action="job.deleted",
        summary=f"Deleted job {job.plan.key}-{job.key} with its tasks",
        request=request,
        team=job.plan.team,
        obj=job,
        changes={"key": job.key, "name": job.name},
    )
    job.delete()


@transaction.atomic
def variable_save(*, variable: Variable, value: str | None, request) -> Variable:
    """Save an input variable; value None keeps the stored one. Values are never audited."""
    creating = variable._state.adding
    stored = None if creating else Variable.objects.get(pk=variable.pk)
    given = value is not None
    if not given and stored is not None and stored.masked != variable.masked:
        # The key moved between masked and plain: the stored value moves with it.
        value = stored.plain_value()
    if value is not None:
        variable.set_value(value)
    variable.updated = now()
    variable.save()
    where = f"plan {variable.plan.key}" if variable.plan_id else f"team {variable.team.name}"
    renamed = stored is not None and stored.key != variable.key
    audit_record(
        action="variable.created" if creating else "variable.updated",
        summary=f"{'Created' if creating else 'Updated'} variable {variable.key} of {where}",
        request=request,
        team=variable.team,
        obj=variable,
        changes={
            "key": [stored.key, variable.key] if renamed else variable.key,
            "masked": variable.masked,
            "value": "set (not recorded)" if given else "kept",
        },
    )
    return variable


@transaction.atomic
def variable_delete(*, variable: Variable, request) -> None:
    audit_record(
        action="variable.deleted",
        summary=f"Deleted variable {variable.key}",
        request=request,
        team=variable.team,
        obj=variable,
        changes={"key": variable.key, "plan": variable.plan.key if variable.plan_id else None},
    )
    variable.delete()


@transaction.atomic
def task_save(*, task: TaskConfig, request) -> TaskConfig:
    creating = task._state.adding
    before = (
        {} if creating else _record(TaskConfig.objects.get(pk=task.pk), fields=TASK_AUDITED_FIELDS)
    )
    if creating:
        last = task.job.tasks.aggregate(Max("position"))["position__max"]
        task.position = 0 if last is None else last + 1
    task.updated = now()
    task.save()
    after = _record(task, fields=TASK_AUDITED_FIELDS)
    changes = after if creating else _changes(before, after)
    if not creating:
        _follow_changes(task, changes)
    if changes:
        verb = "Created" if creating else "Updated"
        audit_record(
            action="task.created" if creating else "task.updated",
            summary=f"{verb} task \u201c{task}\u201d of {task.job}",
            request=request,
            team=task.job.plan.team,
            obj=task,
            changes=changes,
        )
    return task


def _follow_changes(task: TaskConfig, changes: dict) -> None:
    """Keep generated variables true to the task: new keys come with the next run."""
    if "namespace" in changes:
        VariableResult.objects.filter(task=task).delete()
        TaskConfig.objects.filter(pk=task.pk).update(expires_at=None)
        task.expires_at = None
    elif "scope" in changes:
        VariableResult.objects.filter(task=task).update(scope=task.scope)


@transaction.atomic
def task_delete(*, task: TaskConfig, request) -> None:
    audit_record(
        action="task.deleted",
        summary=f"Deleted task \u201c{task}\u201d of {task.job}",
        request=request,
        team=task.job.plan.team,
        obj=task,
        changes=_record(task, fields=TASK_AUDITED_FIELDS),
    )
    task.delete()
