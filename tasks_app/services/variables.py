"""The generated variables (SPEC §5), derived from a task's credential when they are read,
and which of them a consumer sees.

- A task's seven variables come from its credential (one per credential group and refresh)
  and the task's own namespace, registry and scope: nothing per task is stored.
- A job sees the variables its own tasks wrote with local scope, plus every result-scoped
  variable of its plan.
- A plan (deployments, plan-level consumers) sees result-scoped variables only.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils.timezone import now

from tasks_app.lib import aws
from tasks_app.lib.crypto import plain
from tasks_app.models import Credential, Job, Plan, TaskConfig, is_masked_key
from tasks_app.policy.visibility import Viewer, visible_tasks
from tasks_app.rules.generated_variables import generated_values


@dataclass(frozen=True)
class GeneratedVariable:
    task: TaskConfig
    key: str
    value: str  # "" for a masked variable unless its values were asked for
    masked: bool
    scope: str
    expires_at: datetime

    @property
    def expired(self) -> bool:
        return self.expires_at <= now()

    def plain_value(self) -> str:
        return self.value


def registry_endpoint(proxy_endpoint: str, registry_id: str) -> str:
    """The endpoint of another account's registry: same token, that account's host."""
    if not registry_id:
        return proxy_endpoint
    return re.sub(r"^(https://)[0-9]{12}\.", rf"\g<1>{registry_id}.", proxy_endpoint)


def task_values(
    task: TaskConfig, *, secrets: bool = False, decrypted: dict | None = None
) -> dict[str, str]:
    """The task's seven values by key, in the reference document's order; with `secrets`,
    the token's (one decryption of the credential's token, shared through `decrypted` by
    the tasks of one answer), else "" in their place. Empty for a task without one."""
    credential: Credential | None = task.credential
    if credential is None:
        return {}
    token = ""
    if secrets:
        memo = {} if decrypted is None else decrypted
        if credential.pk not in memo:
            memo[credential.pk] = plain(credential.token)
        token = memo[credential.pk]
    password = aws.token_login(token)[1] if token else ""
    return generated_values(
        namespace=task.namespace,
        token=token,
        username=credential.username,
        password=password,
        expires_at=credential.expires_at,
        proxy_endpoint=registry_endpoint(credential.proxy_endpoint, task.registry_id),
    )


def task_variables(task: TaskConfig, *, secrets: bool = False) -> list[GeneratedVariable]:
    """The task's variables in the reference document's order; masked values only with
    `secrets` (one decryption of the credential's token)."""
    credential: Credential | None = task.credential
    if credential is None or not task.enabled:
        return []  # a disabled task serves nothing (the API answers 409), so shows nothing
    variables = []
    for key, value in task_values(task, secrets=secrets).items():
        masked = is_masked_key(key)
        variables.append(
            GeneratedVariable(
                task=task,
                key=key,
                value="" if masked and not secrets else value,
                masked=masked,
                scope=task.scope,
                expires_at=credential.expires_at,
            )
        )
    return variables


def scope_tasks(plan: Plan, job: Job | None = None) -> QuerySet[TaskConfig]:
    """The enabled tasks whose variables a plan (its result-scoped ones), or one of its jobs
    (its own too), sees, in the order their variables are listed."""
    viewer = Viewer(plan_id=plan.pk, job_id=job.pk if job is not None else None)
    return (
        TaskConfig.objects.filter(visible_tasks(viewer), enabled=True)
        .select_related("job", "credential")
        .order_by("job__stage", "job__key", "position", "created")
    )


def _visible(
    tasks: QuerySet[TaskConfig], *, valid_only: bool, secrets: bool
) -> list[GeneratedVariable]:
    tasks = tasks.filter(credential__isnull=False)
    if valid_only:
        tasks = tasks.filter(credential__expires_at__gt=now())
    return variables_of(tasks, secrets=secrets)


def variables_of(tasks: Iterable[TaskConfig], *, secrets: bool = False) -> list[GeneratedVariable]:
    """The variables of these tasks (those with a credential), in their order; masked values
    only with `secrets`."""
    return [
        variable
        for task in tasks
        if task.credential_id is not None
        for variable in task_variables(task, secrets=secrets)
    ]


def variables_for_job(
    job: Job, *, valid_only: bool = False, secrets: bool = False
) -> list[GeneratedVariable]:
    """What the job sees; masked values only with `secrets`."""
    return _visible(scope_tasks(job.plan, job), valid_only=valid_only, secrets=secrets)


def variables_for_plan(
    plan: Plan, *, valid_only: bool = False, secrets: bool = False
) -> list[GeneratedVariable]:
    """What the plan sees; masked values only with `secrets`."""
    return _visible(scope_tasks(plan), valid_only=valid_only, secrets=secrets)
