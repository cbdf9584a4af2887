"""${bamboo.<key>} references in a task's region and connector (SPEC §4.1), resolved against
the plan's input variables: by a run (services/run_inputs.py) and when a task is saved
(services/validation.py), with the same messages."""

import uuid

from tasks_app.lib import aws
from tasks_app.lib.crypto import MASK
from tasks_app.models import Connector, TaskConfig, Variable
from tasks_app.policy.usability import (
    connectors_listed,
    connectors_shared_with,
    credentials_partition,
)
from tasks_app.rules.task_settings import reference_key


def plan_input_variables(plan) -> dict[str, Variable]:
    """The plan's input variables: the team's global ones, overridden by the plan's own."""
    variables = {v.key: v for v in Variable.objects.filter(team_id=plan.team_id, plan=None)}
    variables.update({v.key: v for v in Variable.objects.filter(plan=plan)})
    return variables


# What to do about a reference that does not resolve, by what is wrong with its variable.
DEFINE_IT = "Define it under Variables"
CORRECT_IT = "Correct its value under Variables"


class ReferenceProblem(Exception):
    """A reference that does not resolve; the message is meant for people, and `remedy`
    says what to do about the variable (define it, or correct the value it has)."""

    def __init__(self, message: str, error_class: str, remedy: str = CORRECT_IT):
        super().__init__(message)
        self.message = message
        self.error_class = error_class
        self.remedy = remedy


class References:
    """Resolves one plan's references, reading its variables once."""

    def __init__(self, plan):
        self.plan = plan
        self._variables: dict[str, Variable] | None = None

    def _variable(self, reference: str, what: str) -> tuple[str, str]:
        """(value, value as a message may show it), or ReferenceProblem."""
        if self._variables is None:
            self._variables = plan_input_variables(self.plan)
        key = reference_key(reference) or ""
        variable = self._variables.get(key)
        if variable is None:
            defined = ", ".join(sorted(self._variables)[:20]) or "none yet"
            raise ReferenceProblem(
                f"The {what} variable {reference} is not defined: neither plan "
                f"{self.plan.key} nor team {self.plan.team.name} has a variable {key} "
                f"(defined: {defined}).",
                f"Undefined{what.title()}Variable",
                DEFINE_IT,
            )
        value = variable.plain_value().strip()
        return value, (MASK if variable.masked else repr(value))

    def region(self, reference: str, *, partition: str | None) -> str:
        region, shown = self._variable(reference, "region")
        if region not in aws.ecr_regions(partition):
            where = f" of partition {partition}" if partition else ""
            raise ReferenceProblem(
                f"The region variable {reference} is {shown}, which is not a region code"
                f"{where} where Amazon ECR exists (such as ap-southeast-2).",
                "InvalidRegionVariable",
            )
        return region

    def connector(self, reference: str) -> Connector:
        """A connector the plan's team may see (whether it may use it is the caller's rule:
        sharing withdrawn and host credentials have their own messages)."""
        value, shown = self._variable(reference, "connector")
        try:
            connector_id = uuid.UUID(value)
        except ValueError:
            connector_id = None
        team = self.plan.team
        connector = (
            connectors_shared_with(team).filter(pk=connector_id).first() if connector_id else None
        )
        if connector is None:
            raise ReferenceProblem(
                f"The connector variable {reference} is {shown}, which is not the ID of a "
                f"connector that team {team.name} may use ({connectors_listed(team)}).",
                "InvalidConnectorVariable",
            )
        return connector

    def task_connector(self, task: TaskConfig) -> Connector | None:
        """The connector a task uses: its own, or the one its connector variable names;
        None for the portal host's identity."""
        if task.credentials_source != TaskConfig.Source.CONNECTOR:
            return None
        return task.connector if task.connector_id else self.connector(task.connector_variable)

    def task_region(self, task: TaskConfig, connector: Connector | None) -> str:
        """The region a task uses: its own, or its region variable's, which must be in the
        partition of the credentials (`connector`'s, or the role's)."""
        if not task.region_variable:
            return task.region
        partition = credentials_partition(
            source=task.credentials_source, connector=connector, role_arn=task.role_arn
        )
        return self.region(task.region_variable, partition=partition)
