"""Handing out generated variables: never a stale or expired value (SPEC §5, §7, §8)."""

from dataclasses import dataclass, field
from datetime import datetime

from django.http import Http404
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.lib.compiled_reads import CompiledRead, instance
from tasks_app.models import Credential, Job, Plan, Role, TaskConfig
from tasks_app.policy.access import require_task_access, require_team_role
from tasks_app.policy.visibility import (
    NOT_VISIBLE,
    Viewer,
    scope_within,
    task_visible,
)
from tasks_app.rules.generated_variables import registry_login
from tasks_app.services.audit import audit_record
from tasks_app.services.variables import scope_tasks, task_values


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
    # Registry host → base64 of "AWS:<password>": the Docker config and the pull secret.
    logins: dict[str, str] = field(default_factory=dict)
    # Documents rendered from it, kept as long as the delivery is (ECRPORTAL_API_CACHE_SECONDS).
    rendered: dict = field(default_factory=dict, compare=False, repr=False)


def task_delivery(task: TaskConfig, *, decrypted: dict | None = None) -> Delivery:
    """The task's variables in clear, or NotServable (one decryption of its credential,
    shared through `decrypted` by the tasks of one answer)."""
    if not task.enabled:
        raise NotServable(
            "disabled", f"The task \u201c{task}\u201d is disabled; it has no credentials."
        )
    last_error = f" Last error: {task.last_error}" if task.last_error else ""
    credential = task.credential
    if credential is None:
        raise NotServable(
            "not_fetched",
            f"The task \u201c{task}\u201d has not fetched credentials yet.{last_error}",
        )
    if credential.expires_at <= now():
        raise NotServable(
            "expired",
            f"The credentials of the task \u201c{task}\u201d expired at "
            f"{credential.expires_at:%Y-%m-%dT%H:%M:%SZ}.{last_error}",
        )
    values = task_values(task, secrets=True, decrypted=decrypted)
    host, auth = registry_login(values, task.namespace)
    return Delivery(values, credential.expires_at, {host: auth})


def scope_delivery(*, plan: Plan, job: Job | None = None) -> Delivery:
    """What a plan (result scope) or one of its jobs (plus its local scope) may see."""
    tasks = scope_tasks(plan, job)
    values: dict[str, str] = {}
    logins: dict[str, str] = {}
    expiries: list[datetime] = []
    decrypted: dict = {}  # the tasks of a group share one credential: one decryption
    for task in tasks:
        delivery = task_delivery(task, decrypted=decrypted)
        values.update(delivery.values)
        logins.update(delivery.logins)
        if delivery.expires_at is not None:
            expiries.append(delivery.expires_at)
    return Delivery(values, min(expiries) if expiries else None, logins)


def task_revealed(*, task: TaskConfig, actor: Actor) -> Delivery:
    """A task's values shown to a person on its page (an editor: the caller's loader
    decides), audited; or NotServable."""
    delivery = task_delivery(task)
    audit_record(
        action="variables.revealed",
        summary=f"Revealed the variables of \u201c{task}\u201d",
        actor=actor,
        team=task.job.plan.team,
        obj=task,
    )
    return delivery


def scope_revealed(*, plan: Plan, job: Job | None = None, actor: Actor) -> Delivery:
    """What a plan or one of its jobs sees, shown to a person on its page, audited as a
    task's reveal is; or NotServable."""
    delivery = scope_delivery(plan=plan, job=job)
    where = f"job {plan.key}-{job.key}" if job is not None else f"plan {plan.key}"
    audit_record(
        action="variables.revealed",
        summary=f"Revealed the variables of {where}",
        actor=actor,
        team=plan.team,
        obj=job if job is not None else plan,
    )
    return delivery


@dataclass(frozen=True)
class Served:
    """A task's variables as served, with what deciding access needs: what the token path
    keeps for ECRPORTAL_API_CACHE_SECONDS (never past the values' expiry)."""

    job_id: object
    plan_id: object
    scope: str
    status: str
    delivery: Delivery


def task_for_actor(*, task_id, actor: Actor) -> TaskConfig:
    """The task, if the actor may read its credentials (else Http404 or PermissionDenied)."""
    task = (
        TaskConfig.objects.select_related("job__plan__team", "credential")
        .filter(id=task_id)
        .first()
    )
    if task is None:  # said as for a task the actor may not see: no existence oracle
        raise Http404("No such task.")
    try:
        require_task_access(actor, task)
    except Http404:
        raise Http404("No such task.") from None  # the same words as for an unknown ID
    return task


# What serving a task to a token reads: the task's own settings and state, its plan (by
# ID) and its credential, in one query compiled once per thread (tasks_app/lib/compiled_reads.py).
TASK_COLUMNS = (
    "id",
    "job_id",
    "credential_id",
    "description",
    "namespace",
    "registry_id",
    "scope",
    "enabled",
    "last_run_ok",
    "last_error",
)
CREDENTIAL_COLUMNS = ("token", "username", "expires_at", "proxy_endpoint", "request_id")
TOKEN_PATH_FIELDS = (
    *TASK_COLUMNS,
    "job__plan_id",
    *(f"credential__{name}" for name in CREDENTIAL_COLUMNS),
)
_task_read = CompiledRead(
    lambda task_id: (
        TaskConfig.objects.filter(id=task_id).order_by().values_list(*TOKEN_PATH_FIELDS)
    ),
    field=TaskConfig._meta.pk,
    fields=TOKEN_PATH_FIELDS,
)


def _task_for_token(*, task_id, actor: Actor) -> TaskConfig:
    row = _task_read.get(task_id)
    if row is None:
        raise Http404("No such task.")
    width = len(TASK_COLUMNS)
    task = instance(TaskConfig, TASK_COLUMNS, row[:width])
    task.job = instance(Job, ("id", "plan_id"), (task.job_id, row[width]))
    if task.credential_id is not None:
        task.credential = instance(
            Credential, ("id", *CREDENTIAL_COLUMNS), (task.credential_id, *row[width + 1 :])
        )
    require_task_access(actor, task)
    return task


def task_served(*, task_id, actor: Actor) -> Served:
    """A task's variables for the actor, or NotServable. A token's come from the per-process
    cache; a person's read is audited."""
    token = actor.token
    served = None
    if token is not None:
        with caches.deliveries_lock:
            served = caches.deliveries.get(task_id)
    expires_at = served.delivery.expires_at if served is not None else None
    if token is not None and served is not None and expires_at and expires_at > now():
        viewer = Viewer.of_token(token)
        if not task_visible(
            viewer, plan_id=served.plan_id, job_id=served.job_id, scope=served.scope
        ):
            raise Http404(NOT_VISIBLE)
        return served
    if token is not None:
        task = _task_for_token(task_id=task_id, actor=actor)
    else:
        task = task_for_actor(task_id=task_id, actor=actor)
    served = Served(task.job_id, task.job.plan_id, task.scope, task.status, task_delivery(task))
    if token is not None:
        with caches.deliveries_lock:
            caches.deliveries[task_id] = served
    else:
        record_read(
            actor=actor,
            task=task,
            summary=f"Read the variables of \u201c{task}\u201d",
            team=task.job.plan.team,
        )
    return served


NO_SUCH_PLAN = "No such plan."
NO_SUCH_JOB = "No such job in this plan."


def _require_scope_within(token, *, plan_id, job_id) -> None:
    """A token reads its own plan's variables, and its own job's: else 404, in the words
    used for a plan or job that does not exist."""
    viewer = Viewer.of_token(token)
    if not scope_within(viewer, plan_id=plan_id):
        raise Http404(NO_SUCH_PLAN)
    if not scope_within(viewer, plan_id=plan_id, job_id=job_id):
        raise Http404(NO_SUCH_JOB)


def plan_served(*, plan_key: str, job_key: str | None, actor: Actor) -> Delivery:
    """What a plan (its result variables), or one of its jobs (also its local ones), may see,
    for the actor: a token of that plan (and that job), or an editor of its team. A token's
    answer comes from the per-process cache, as a task's does."""
    token = actor.token
    cache_key = ("scope", plan_key, job_key or "")
    if token is not None:
        with caches.deliveries_lock:
            cached = caches.deliveries.get(cache_key)
        if cached is not None:
            plan_id, job_id, delivery = cached
            _require_scope_within(token, plan_id=plan_id, job_id=job_id)
            if delivery.expires_at is None or delivery.expires_at > now():
                return delivery
    plan = Plan.objects.select_related("team").filter(key=plan_key).first()
    if plan is None:
        raise Http404(NO_SUCH_PLAN)
    if token is None:
        try:
            require_team_role(actor.user, plan.team, Role.EDITOR)
        except Http404:  # in the words for an unknown key: no oracle of other teams' keys
            raise Http404(NO_SUCH_PLAN) from None
    else:  # before the job is looked up: another plan's jobs are not the token's to probe
        _require_scope_within(token, plan_id=plan.id, job_id=None)
    job = None
    if job_key:
        job = plan.jobs.filter(key=job_key).first()
        if job is None:
            raise Http404(NO_SUCH_JOB)
        if token is not None:
            _require_scope_within(token, plan_id=plan.id, job_id=job.id)
    delivery = scope_delivery(plan=plan, job=job)
    if token is not None:
        with caches.deliveries_lock:
            caches.deliveries[cache_key] = (plan.id, job.id if job else None, delivery)
    if token is None:
        where = f"job {plan.key}-{job.key}" if job else f"plan {plan.key}"
        record_read(
            actor=actor, task=None, summary=f"Read the variables of {where}", team=plan.team
        )
    return delivery


def token_scope_served(*, actor: Actor) -> Delivery:
    """What a token may see through its own binding: its job (with the plan's result
    variables), or its plan. For the credential helper, which knows only its token."""
    token = actor.token
    if token is None:
        raise ValueError("token_scope_served answers API tokens only")
    plan_key, job_key = token_binding_keys(token)
    return plan_served(plan_key=plan_key, job_key=job_key, actor=actor)


def token_binding_keys(token) -> tuple[str, str | None]:
    """The plan key and job key (None for a plan token) a token is bound to, kept with the
    token's cached lookup."""
    with caches.deliveries_lock:
        keys = caches.deliveries.get(("binding", token.pk))
    if keys is None:
        plan_key = Plan.objects.filter(pk=token.plan_id).values_list("key", flat=True).first()
        job_key = None
        if token.job_id is not None:
            job_key = Job.objects.filter(pk=token.job_id).values_list("key", flat=True).first()
            if job_key is None:
                plan_key = None
        if plan_key is None:  # deleted while another process still knew the token
            raise Http404(NO_SUCH_PLAN)
        keys = (plan_key, job_key)
        with caches.deliveries_lock:
            caches.deliveries["binding", token.pk] = keys
    return keys


def record_read(*, actor: Actor, task: TaskConfig | None, summary: str, team) -> None:
    """People reading secrets through the API or the CLI leave an audit event."""
    audit_record(
        action="variables.read",
        summary=summary,
        actor=actor,
        team=team,
        obj=task,
    )
