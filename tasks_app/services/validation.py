"""The rules that need more than the object itself: other rows (uniqueness, sharing,
collisions) or AWS data (regions). The save services call them, so that the forms and the
API apply the same rules with the same messages. Each raises ValidationError by field.

Each first runs the model's own field checks (full_clean without the uniqueness and
constraint checks, which are made here, once, with the portal's messages).
"""

from collections.abc import Callable

from django.core.exceptions import ValidationError

from tasks_app.lib import aws
from tasks_app.models import Connector, Job, Plan, TaskConfig, Variable
from tasks_app.policy.references import ReferenceProblem, References
from tasks_app.rules.connector_settings import host_credentials_available
from tasks_app.rules.task_settings import pull_only_refusal, task_partition
from tasks_app.selectors import (
    HOST_NOT_ALLOWED,
    NOT_SHARED,
    colliding_task,
    connector_refusal,
    host_not_allowed_message,
)


def _field_checks(obj) -> dict[str, list[str]]:
    try:
        obj.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as e:
        return e.message_dict
    return {}


def _raise(errors: dict) -> None:
    if errors:
        raise ValidationError(errors)


# Added to a reference's save-time error: how to save the task anyway.
CONFIRM_REFERENCES = (
    " Define it under Variables, or confirm that it will exist when the task runs "
    "(allow_undefined_variables in the API) to save the task as it is."
)


def _reference_errors(task: TaskConfig, errors: dict) -> None:
    """A ${bamboo.<key>} reference that would not resolve now is a field error at save time,
    with the message a run would give (tasks_app/policy/references.py)."""
    references = References(task.job.plan)
    checks: list[tuple[str, Callable[[], object]]] = []
    if task.region_variable and "region_variable" not in errors:
        checks.append(
            (
                "region_variable",
                lambda: references.region(task.region_variable, partition=task_partition(task)),
            )
        )
    if (
        task.credentials_source == TaskConfig.Source.CONNECTOR
        and not task.connector_id
        and task.connector_variable
        and "connector_variable" not in errors
    ):
        checks.append(
            ("connector_variable", lambda: references.connector(task.connector_variable))
        )
    for field, check in checks:
        try:
            check()
        except ReferenceProblem as e:
            errors.setdefault(field, []).append(e.message + CONFIRM_REFERENCES)


def _pull_only_problem(task: TaskConfig) -> str | None:
    """Whether the task's credentials can give a pull-only token (a connector variable is
    checked when the task runs)."""
    if task.credentials_source == TaskConfig.Source.HOST:
        kind = "assumed_role" if task.role_arn else "provided"
        return pull_only_refusal(
            principal_type=kind, has_policy=False, what="the portal host's identity"
        )
    connector = task.connector if task.connector_id else None
    if connector is None:
        return None
    return pull_only_refusal(
        principal_type=connector.principal_type,
        has_policy=bool(connector.session_policy),
        what=f"connector {connector.name}",
    )


def task_validate(task: TaskConfig, *, unresolved_allowed: bool = False) -> None:
    """The task's rules. References to variables must resolve now, unless the person
    confirmed (`unresolved_allowed`) that they will when the task runs."""
    errors = _field_checks(task)
    team = task.job.plan.team
    if task.credentials_source == TaskConfig.Source.CONNECTOR and task.connector_id:
        refusal = connector_refusal(team, task.connector)
        if refusal == HOST_NOT_ALLOWED:
            errors.setdefault("connector", []).append(
                host_not_allowed_message(team, task.connector)
            )
        elif refusal == NOT_SHARED:
            errors.setdefault("connector", []).append(
                f"Choose a connector that team {team.name} may use."
            )
    elif task.credentials_source == TaskConfig.Source.HOST and not host_credentials_available(
        team
    ):
        errors.setdefault("credentials_source", []).append(
            f"The portal host's own role is not available to team {team.name}. "
            "A portal administrator can grant it."
        )
    if task.region and not errors.keys() & {"region", "connector", "role_arn"}:
        partition = task_partition(task)
        if task.region not in aws.ecr_regions(partition):
            where = f"of partition {partition} " if partition else ""
            errors["region"] = [
                f"{task.region} is not a region code {where}where Amazon ECR exists; "
                "choose one such as ap-southeast-2."
            ]
    if task.access == TaskConfig.Access.PULL and "access" not in errors:
        problem = _pull_only_problem(task)
        if problem:
            errors.setdefault("access", []).append(problem)
    if not unresolved_allowed:
        _reference_errors(task, errors)
    if not errors:
        other = colliding_task(task)
        if other is not None:
            errors["namespace"] = [
                f"The task \u201c{other}\u201d of job {other.job.key} already writes "
                f"{other.namespace}.ecr.* variables that the same jobs see. "
                "Choose another namespace, or local scope in different jobs."
            ]
    _raise(errors)


def connector_validate(connector: Connector, *, shared_with=()) -> None:
    errors = _field_checks(connector)
    team = connector.team if connector.team_id else None
    if team is not None:
        taken = Connector.objects.filter(team=team, name=connector.name).exclude(pk=connector.pk)
        if connector.name and taken.exists():
            errors.setdefault("name", []).append(
                f"{team.name} already has a connector called {connector.name}."
            )
        if team in shared_with:
            errors.setdefault("shared_with", []).append(
                "The owner team uses the connector anyway."
            )
    if connector.credentials == Connector.Credentials.HOST and not host_credentials_available(
        team
    ):
        errors.setdefault("credentials", []).append(
            "The portal host's AWS identity is not available to this team. "
            "A portal administrator can grant it."
        )
    _raise(errors)


def plan_validate(plan: Plan) -> None:
    errors = _field_checks(plan)
    if plan.key and Plan.objects.filter(key=plan.key).exclude(pk=plan.pk).exists():
        errors.setdefault("key", []).append(f"A plan {plan.key} exists already.")
    _raise(errors)


def job_validate(job: Job) -> None:
    errors = _field_checks(job)
    taken = Job.objects.filter(plan=job.plan, key=job.key).exclude(pk=job.pk)
    if job.key and taken.exists():
        errors.setdefault("key", []).append(f"Plan {job.plan.key} already has a job {job.key}.")
    _raise(errors)


def variable_validate(variable: Variable) -> None:
    errors = _field_checks(variable)
    plan = variable.plan
    if plan is not None and plan.team_id != variable.team_id:
        errors.setdefault("plan", []).append("The plan belongs to another team.")
    scope = Variable.objects.filter(team=variable.team, plan=plan, key=variable.key)
    if variable.key and scope.exclude(pk=variable.pk).exists():
        where = f"plan {plan.key}" if plan is not None else f"team {variable.team.name}"
        errors.setdefault("key", []).append(
            f"A variable {variable.key} exists already for {where}."
        )
    _raise(errors)
