"""Plans, jobs, input variables and task configurations: saving and deleting, audited."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.models import ApiToken, Job, Plan, TaskConfig, Variable
from tasks_app.services.audit import audit_changes, audit_record, audit_snapshot
from tasks_app.services.validation import (
    CONFIRM_REFERENCES,
    job_validate,
    plan_validate,
    task_validate,
    variable_validate,
)

# A task's settings as the audit trail records them (the connector by its ID).
TASK_AUDITED_FIELDS = [f"{f}_id" if f == "connector" else f for f in TaskConfig.SETTINGS]


def _save_audited(
    obj, *, kind: str, label, fields: list[str], team, actor: Actor, stored=None
) -> dict:
    """Save obj and record what changed as an audit event ("<kind>.created"/".updated").

    ``label`` gives the object's name for the summary, after saving; ``stored`` is the row
    as it is in the database, when the caller has read it already.
    """
    creating = obj._state.adding
    if not creating and stored is None:
        stored = type(obj).objects.get(pk=obj.pk)
    before = {} if creating else audit_snapshot(stored, fields)
    obj.save()
    after = audit_snapshot(obj, fields)
    changes = after if creating else audit_changes(before, after)
    if changes:
        verb = "created" if creating else "updated"
        audit_record(
            action=f"{kind}.{verb}",
            summary=f"{verb.title()} {label(obj)}",
            actor=actor,
            team=team,
            obj=obj,
            changes=changes,
        )
    return changes


def _delete_audited(obj, *, kind: str, summary: str, team, changes: dict, actor: Actor) -> None:
    audit_record(
        action=f"{kind}.deleted",
        summary=summary,
        actor=actor,
        team=team,
        obj=obj,
        changes=changes,
    )
    obj.delete()


@transaction.atomic
def plan_save(*, plan: Plan, actor: Actor) -> Plan:
    plan_validate(plan)
    _save_audited(
        plan,
        kind="plan",
        label=lambda p: f"plan {p.key}",
        fields=["key", "name"],
        team=plan.team,
        actor=actor,
    )
    return plan


def _tokens_forget(tokens) -> None:
    """Drop the tokens of what is being deleted from this process's cache (as token_revoke
    does): they stop at once here, in the others within ECRPORTAL_API_CACHE_SECONDS."""
    caches.tokens_forget(list(tokens.values_list("token_hash", flat=True)))


@transaction.atomic
def plan_delete(*, plan: Plan, actor: Actor) -> None:
    _tokens_forget(ApiToken.objects.filter(plan=plan))
    _delete_audited(
        plan,
        kind="plan",
        summary=f"Deleted plan {plan.key} with its jobs, tasks and variables",
        team=plan.team,
        changes={"key": plan.key, "name": plan.name},
        actor=actor,
    )


@transaction.atomic
def job_save(*, job: Job, actor: Actor) -> Job:
    job_validate(job)
    _save_audited(
        job,
        kind="job",
        label=lambda j: f"job {j.plan.key}-{j.key}",
        fields=["key", "name", "stage"],
        team=job.plan.team,
        actor=actor,
    )
    return job


@transaction.atomic
def job_delete(*, job: Job, actor: Actor) -> None:
    _tokens_forget(ApiToken.objects.filter(job=job))
    _delete_audited(
        job,
        kind="job",
        summary=f"Deleted job {job.plan.key}-{job.key} with its tasks",
        team=job.plan.team,
        changes={"key": job.key, "name": job.name},
        actor=actor,
    )


@transaction.atomic
def variable_save(*, variable: Variable, value: str | None, actor: Actor) -> Variable:
    """Save an input variable; value None keeps the stored one. Values are never audited.

    A secret never becomes readable by renaming: a masked variable renamed to a plain
    key needs a new value (the secret is discarded), else ValidationError on "value".
    A plain variable renamed to a masked key keeps its value, now encrypted.
    """
    variable_validate(variable)
    creating = variable._state.adding
    stored = None if creating else Variable.objects.select_for_update().get(pk=variable.pk)
    given = value is not None
    unmasking = stored is not None and stored.masked and not variable.masked
    if stored is not None and unmasking and not given:
        raise ValidationError(
            {
                "value": (
                    f"{stored.key} holds a secret, and {variable.key} would show its value "
                    "to every member. Enter a new value for it (the secret is discarded), "
                    "or keep a key that contains password, secret, passphrase or sshkey."
                )
            }
        )
    if not given and stored is not None and stored.masked != variable.masked:
        value = stored.plain_value()  # plain → masked: the value moves into the secret
    if value is not None:
        variable.set_value(value)
    variable.updated = now()
    variable.save()
    plan = variable.plan
    where = f"plan {plan.key}" if plan is not None else f"team {variable.team.name}"
    renamed = stored is not None and stored.key != variable.key
    if stored is not None and unmasking:
        what = f"replaced; the secret of {stored.key} was discarded (not recorded)"
    elif given:
        what = "set (not recorded)"
    elif stored is not None and variable.masked and not stored.masked:
        what = "kept, now masked and encrypted"
    else:
        what = "kept"
    audit_record(
        action="variable.created" if creating else "variable.updated",
        summary=f"{'Created' if creating else 'Updated'} variable {variable.key} of {where}",
        actor=actor,
        team=variable.team,
        obj=variable,
        changes={
            "key": [stored.key, variable.key] if stored is not None and renamed else variable.key,
            "masked": [stored.masked, variable.masked]
            if stored is not None and stored.masked != variable.masked
            else variable.masked,
            "value": what,
        },
    )
    return variable


@transaction.atomic
def variable_delete(*, variable: Variable, actor: Actor) -> None:
    _delete_audited(
        variable,
        kind="variable",
        summary=f"Deleted variable {variable.key}",
        team=variable.team,
        changes={"key": variable.key, "plan": variable.plan.key if variable.plan else None},
        actor=actor,
    )


@transaction.atomic
def task_save(
    *,
    task: TaskConfig,
    actor: Actor,
    unresolved_allowed: bool = False,
    confirm: str = CONFIRM_REFERENCES,
) -> TaskConfig:
    """Create or change a task. Its variable references must resolve now unless
    `unresolved_allowed` (the person confirmed that they will at run time; `confirm` says
    how, in the words of the caller's control)."""
    task_validate(task, unresolved_allowed=unresolved_allowed, confirm=confirm)
    before = None
    if task._state.adding:
        last = task.job.tasks.aggregate(Max("position"))["position__max"]
        task.position = 0 if last is None else last + 1
    else:
        before = TaskConfig.objects.select_for_update().get(pk=task.pk)
    task.updated = now()
    dropped = before is not None and _serves_no_longer(task, before)
    if dropped:  # what it served goes (409 until the next run), and so does any claim on it
        task.credential = None
        task.lease_until, task.claim = None, None
    # The scheduler fetches new, re-enabled and changed tasks at once, never disabled ones.
    if not task.enabled:
        task.refresh_due_at = None
    elif before is None or not before.enabled or dropped:
        task.refresh_due_at, task.failures = now(), 0
    _save_audited(
        task,
        kind="task",
        label=lambda t: f"task \u201c{t}\u201d of {t.job}",
        fields=TASK_AUDITED_FIELDS,
        team=task.job.plan.team,
        actor=actor,
        stored=before,
    )
    return task


def _serves_no_longer(task: TaskConfig, before: TaskConfig) -> bool:
    """Whether what the task served before this change may not be served after it: its
    variables are named by the namespace, and its credentials come from the credential
    settings (a task made pull-only must never serve the push token it held)."""
    return (
        task.namespace != before.namespace
        or task.credential_settings() != before.credential_settings()
    )


@transaction.atomic
def task_delete(*, task: TaskConfig, actor: Actor) -> None:
    _delete_audited(
        task,
        kind="task",
        summary=f"Deleted task \u201c{task}\u201d of {task.job}",
        team=task.job.plan.team,
        changes=audit_snapshot(task, TASK_AUDITED_FIELDS),
        actor=actor,
    )
