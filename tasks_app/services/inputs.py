"""What a task needs before it can call AWS (SPEC §4.2): its region, its connector and how to
obtain credentials, with ${bamboo.<key>} references resolved against the plan's variables
and every rule of use checked again at run time (sharing, host credentials, unattended use).
"""

import uuid
from dataclasses import dataclass

from tasks_app import aws
from tasks_app.connector_rules import ROLE_ARN, host_credentials_available
from tasks_app.crypto import MASK
from tasks_app.models import Connector, TaskConfig, TaskRun, Variable
from tasks_app.selectors import (
    HOST_NOT_ALLOWED,
    NOT_SHARED,
    connector_refusal,
    connectors_shared_with,
    host_not_allowed_message,
)
from tasks_app.services.connectors import principal_for
from tasks_app.task_rules import reference_key


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


def credential_group(*, connector_id: uuid.UUID | None, host_role_arn: str, region: str) -> str:
    """The credential group: what one GetAuthorizationToken serves. Tokens are bound to the
    credentials and the region, not to a registry: a connector and a region, or the portal
    host's own credentials (with the role it assumes, if any) and a region."""
    source = f"connector:{connector_id}" if connector_id else f"host:{host_role_arn}"
    return f"{source}|{region}"


@dataclass(frozen=True)
class Resolved:
    region: str
    connector: Connector | None
    principal: aws.Principal

    @property
    def group(self) -> str:
        return credential_group(
            connector_id=self.connector.pk if self.connector else None,
            host_role_arn=self.principal.role_arn,
            region=self.region,
        )


def input_variables(plan) -> dict[str, Variable]:
    """The plan's input variables: the team's global ones, overridden by the plan's own."""
    variables = {v.key: v for v in Variable.objects.filter(team_id=plan.team_id, plan=None)}
    variables.update({v.key: v for v in Variable.objects.filter(plan=plan)})
    return variables


class _Lookup:
    """Resolves ${bamboo.<key>} references against the plan's input variables, once."""

    def __init__(self, plan):
        self.plan = plan
        self._variables = None

    def __call__(self, reference: str, what: str) -> tuple[str, str]:
        """(value, value as it may be shown in a message)."""
        if self._variables is None:
            self._variables = input_variables(self.plan)
        variable = self._variables.get(reference_key(reference) or "")
        if variable is None:
            raise RunError(
                f"The {what} variable {reference} is not defined: neither plan "
                f"{self.plan.key} nor team {self.plan.team.name} has a variable "
                f"{reference_key(reference)}.",
                f"Undefined{what.title()}Variable",
            )
        value = variable.plain_value().strip()
        return value, (MASK if variable.masked else repr(value))


def _refusal(team, connector, memo: dict) -> str | None:
    key = ("refusal", team.pk, connector.pk)
    if key not in memo:
        memo[key] = connector_refusal(team, connector)
    return memo[key]


def _principal(connector, memo: dict) -> aws.Principal:
    key = ("principal", connector.pk)
    if key not in memo:
        memo[key] = principal_for(connector)
    return memo[key]


def task_resolve(*, task: TaskConfig, trigger: str, memo: dict | None = None) -> Resolved:
    """Region, connector and principal of a run. `memo` shares lookups between the
    tasks of one refresh group (they share team, connector and region)."""
    memo = {} if memo is None else memo
    plan = task.job.plan
    lookup = _Lookup(plan)

    if task.credentials_source == TaskConfig.Source.CONNECTOR:
        connector = task.connector
        if connector is None:
            value, shown = lookup(task.connector_variable, "connector")
            try:
                connector_id = uuid.UUID(value)
            except ValueError:
                connector_id = None
            connector = (
                connectors_shared_with(plan.team).filter(pk=connector_id).first()
                if connector_id
                else None
            )
            if connector is None:
                raise RunError(
                    f"The connector variable {task.connector_variable} is {shown}, which is "
                    f"not the ID of a connector that team {plan.team.name} may use (such as "
                    "f24e81bc-7aff-42db-86a2-7cf82e24d871).",
                    "InvalidConnectorVariable",
                )
        refusal = _refusal(plan.team, connector, memo)
        if refusal == HOST_NOT_ALLOWED:
            raise RunError(host_not_allowed_message(plan.team, connector), refusal)
        if refusal == NOT_SHARED:
            raise RunError(
                f"Team {plan.team.name} may no longer use connector {connector.name}: "
                "its owner stopped sharing it. Choose another connector.",
                refusal,
            )
        if trigger != TaskRun.Trigger.MANUAL and not connector.unattended_use:
            raise RunError(
                f"Connector {connector.name} does not allow unattended use "
                "(scheduled refreshes and API calls).",
                "UnattendedUseNotAllowed",
            )
        principal = _principal(connector, memo)
        partition = connector.partition
    else:
        if not host_credentials_available(plan.team):
            raise RunError(
                f"The portal host's own role is not available to team {plan.team.name}.",
                "HostCredentialsNotAllowed",
            )
        connector = None
        match = ROLE_ARN.match(task.role_arn) if task.role_arn else None
        partition = match["partition"] if match else None
        principal = aws.Principal(
            credentials="host",
            principal_type="assumed_role" if task.role_arn else "provided",
            role_arn=task.role_arn,
            duration=3600 if task.role_arn else None,
            partition=partition or "aws",
        )

    if task.region_variable:
        region, shown = lookup(task.region_variable, "region")
        if region not in aws.ecr_regions(partition):
            where = f" of partition {partition}" if partition else ""
            raise RunError(
                f"The region variable {task.region_variable} is {shown}, which is not a "
                f"region code{where} where Amazon ECR exists (such as ap-southeast-2).",
                "InvalidRegionVariable",
            )
    else:
        region = task.region
        if partition and region not in aws.ecr_regions(partition):
            raise RunError(
                f"Region {region} is not in partition {partition} of the credentials.",
                "RegionNotInPartition",
            )
    return Resolved(region=region, connector=connector, principal=principal)
