"""The rules that need more than the object itself: other rows (uniqueness, sharing,
collisions) or AWS data (regions). The save services call them, so that the forms and the
API apply the same rules with the same messages. Each raises ValidationError by field.

Each first runs the model's own field checks (full_clean without the uniqueness and
constraint checks, which are made here, once, with the portal's messages).
"""

from collections.abc import Iterable

from django.core.exceptions import ValidationError

from tasks_app.models import Connector, Job, Plan, TaskConfig, Variable
from tasks_app.policy.references import ReferenceProblem, References
from tasks_app.policy.usability import host_identity_refusal, task_refusal
from tasks_app.selectors import colliding_task

# The settings the rule of use reads: it is checked when none of them has an error.
USE_FIELDS = {
    "access",
    "connector",
    "connector_variable",
    "credentials_source",
    "region",
    "role_arn",
}


def _field_checks(obj) -> dict[str, list[str]]:
    try:
        obj.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as e:
        return e.message_dict
    return {}


def _raise(errors: dict) -> None:
    if errors:
        raise ValidationError(errors)


# How to save a task whose references do not resolve now, where the caller does not say it
# in its own terms (the form's checkbox, the API's allow_undefined_variables).
CONFIRM_REFERENCES = "confirm that its variables will be defined and valid when the task runs"


# The settings whose collision with another task's variables is checked (the namespace's).
COLLISION_FIELDS = {"enabled", "job", "namespace", "scope"}


def reference_error(problem: ReferenceProblem, *, confirm: str = CONFIRM_REFERENCES) -> str:
    """A reference's save-time error: a run's words, what to do about the variable, and how
    to save the task as it is, in the words of the caller's own control (`confirm`)."""
    return f"{problem.message} {problem.remedy}, or {confirm} to save the task as it is."


def task_validate(
    task: TaskConfig,
    *,
    unresolved_allowed: bool = False,
    known: Iterable[str] = (),
    confirm: str = CONFIRM_REFERENCES,
) -> None:
    """The task's rules. References to variables must resolve now, unless the person
    confirmed (`unresolved_allowed`) that they will when the task runs; then the rule of
    use (policy/usability.py) is checked with what is known now, and fully when it runs.

    Every rule whose settings are sound is checked, so that one answer lists every error:
    a rule is skipped only when a setting it reads has an error, here or among `known` (the
    fields a form found wrong before, whose values are not the person's; their own errors
    are the form's to tell). `confirm` is how the caller's people confirm (see
    reference_error)."""
    known = set(known)
    errors = _field_checks(task)
    for field in known:
        errors.setdefault(field, [])
    connector = task.connector if task.connector_id else None
    if task.credentials_source != TaskConfig.Source.CONNECTOR:
        connector = None
    if not unresolved_allowed:
        references = References(task.job.plan)
        connector = _resolve_references(task, references, connector, errors, confirm)
    if not errors.keys() & USE_FIELDS:
        refusal = task_refusal(task=task, connector=connector, unattended=False)
        if refusal is not None:
            field = refusal.field
            if field == "connector" and not task.connector_id:
                field = "connector_variable"
            errors[field] = [refusal.message]
    if not errors.keys() & COLLISION_FIELDS:
        other = colliding_task(task)
        if other is not None:
            errors["namespace"] = [
                f"The task \u201c{other}\u201d of job {other.job.key} already writes "
                f"{other.namespace}.ecr.* variables that the same jobs see. "
                "Choose another namespace, or local scope in different jobs."
            ]
    # The errors of `known` fields are the caller's to tell.
    _raise({field: m for field, m in errors.items() if m and field not in known})


def _resolve_references(task, references: References, connector, errors: dict, confirm: str):
    """A ${bamboo.<key>} reference that would not resolve now is a field error at save time,
    with the message a run would give (policy/references.py). Returns the connector the
    task would use (its connector variable's, once resolved)."""
    if "connector_variable" not in errors:
        try:
            connector = references.task_connector(task)
        except ReferenceProblem as e:
            errors["connector_variable"] = [reference_error(e, confirm=confirm)]
            # The region variable is still checked, in any partition (the connector's is
            # not known): one answer lists both.
            if task.region_variable and "region_variable" not in errors:
                try:
                    references.region(task.region_variable, partition=None)
                except ReferenceProblem as e:
                    errors["region_variable"] = [reference_error(e, confirm=confirm)]
            return None
    if "region_variable" not in errors:
        try:
            references.task_region(task, connector)
        except ReferenceProblem as e:
            errors["region_variable"] = [reference_error(e, confirm=confirm)]
    return connector


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
    if connector.credentials == Connector.Credentials.HOST:
        refusal = host_identity_refusal([team] if team is not None else [])
        if refusal:
            errors.setdefault("credentials", []).append(refusal)
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
