"""What a task needs before it can call AWS (SPEC §4.2): its region, its connector and how to
obtain credentials, with ${bamboo.<key>} references resolved against the plan's variables
and every rule of use checked again at run time (sharing, host credentials, unattended use).
"""

import uuid
from dataclasses import dataclass, replace

from tasks_app.lib import aws
from tasks_app.models import Connector, TaskConfig
from tasks_app.policy.references import ReferenceProblem, References
from tasks_app.policy.usability import credentials_partition, task_refusal, unattended
from tasks_app.services.connectors import principal_for


class RunError(Exception):
    """The task cannot run as configured; the message is meant for people."""

    def __init__(self, message: str, error_class: str):
        super().__init__(message)
        self.message = message
        self.error_class = error_class


class TaskDisabled(RunError):
    def __init__(self, task):
        super().__init__(
            f"The task \u201c{task}\u201d is disabled; it never runs.", "TaskDisabled"
        )


def credential_group(
    *,
    connector_id: uuid.UUID | None,
    host_role_arn: str,
    region: str,
    access: str = "",
    registry: str = "",
) -> str:
    """The credential group: what one GetAuthorizationToken serves. Tokens are bound to the
    credentials and the region, not to a registry: a connector and a region, or the portal
    host's own credentials (with the role it assumes, if any) and a region; and pull-only
    tokens are obtained apart (another session policy), as are ECR Public's (another
    service: a private and a public token never share a group)."""
    source = f"connector:{connector_id}" if connector_id else f"host:{host_role_arn}"
    pull = "|pull" if access == TaskConfig.Access.PULL else ""
    public = "|public" if registry == TaskConfig.Registry.PUBLIC else ""
    return f"{source}|{region}{pull}{public}"


@dataclass(frozen=True)
class Resolved:
    region: str
    connector: Connector | None
    principal: aws.Principal
    access: str = TaskConfig.Access.PUSH_PULL
    registry: str = TaskConfig.Registry.PRIVATE

    @property
    def public(self) -> bool:
        return self.registry == TaskConfig.Registry.PUBLIC

    @property
    def group(self) -> str:
        return credential_group(
            connector_id=self.connector.pk if self.connector else None,
            host_role_arn=self.principal.role_arn,
            region=self.region,
            access=self.access,
            registry=self.registry,
        )


def _principal(connector, memo: dict) -> aws.Principal:
    key = ("principal", connector.pk)
    if key not in memo:
        memo[key] = principal_for(connector)
    return memo[key]


def _references(plan, memo: dict) -> References:
    """The plan's references, its variables read once for every task of the plan."""
    key = ("references", plan.pk)
    if key not in memo:
        memo[key] = References(plan)
    return memo[key]


def task_resolve(*, task: TaskConfig, trigger: str, memo: dict | None = None) -> Resolved:
    """Region, connector and principal of a run, every rule of use checked. `memo` shares
    lookups between the tasks of one refresh (their plans' variables, their team's
    connector, its principal)."""
    memo = {} if memo is None else memo
    plan = task.job.plan
    try:
        return _resolve(task, trigger, plan, _references(plan, memo), memo)
    except ReferenceProblem as e:
        raise RunError(e.message, e.error_class) from None


def task_group(*, task: TaskConfig, memo: dict | None = None) -> str:
    """The credential group a task's settings place it in, its ${bamboo.<key>} references
    read (once per plan through `memo`): what a claim groups a task by. Nothing else is
    resolved here; the run resolves the task, once, and checks its rules (task_resolve).
    RunError when a reference does not resolve."""
    memo = {} if memo is None else memo
    references = _references(task.job.plan, memo)
    try:
        connector = references.task_connector(task)
        region = references.task_region(task, connector)
    except ReferenceProblem as e:
        raise RunError(e.message, e.error_class) from None
    host = task.credentials_source == TaskConfig.Source.HOST
    return credential_group(
        connector_id=connector.pk if connector is not None else None,
        host_role_arn=task.role_arn if host else "",
        region=region,
        access=task.access,
        registry=task.registry,
    )


def _resolve(task, trigger, plan, references: References, memo: dict) -> Resolved:
    connector = references.task_connector(task)
    refusal = task_refusal(
        task=task, connector=connector, unattended=unattended(trigger), memo=memo
    )
    if refusal is not None:
        raise RunError(refusal.message, refusal.code)
    partition = credentials_partition(
        source=task.credentials_source, connector=connector, role_arn=task.role_arn
    )
    if connector is not None:
        principal = _principal(connector, memo)
    else:
        principal = aws.Principal(
            credentials="host",
            principal_type="assumed_role" if task.role_arn else "provided",
            role_arn=task.role_arn,
            duration=3600 if task.role_arn else None,
            partition=partition or "aws",
        )
    region = references.task_region(task, connector)
    if task.access == TaskConfig.Access.PULL:
        principal = replace(principal, policy=aws.pull_only_policy(public=task.public))
    return Resolved(
        region=region,
        connector=connector,
        principal=principal,
        access=task.access,
        registry=task.registry,
    )
