"""Reads that views and services share: which connectors a team may use, which tasks collide,
the regions a form offers. Queries only; no side effects."""

import json

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from tasks_app.lib import aws
from tasks_app.models import (
    Connector,
    Membership,
    Scope,
    Status,
    TaskConfig,
    Team,
    Variable,
    status_filter,
)
from tasks_app.rules.connector_settings import host_credentials_available
from tasks_app.rules.generated_variables import env_name, generated_keys

PARTITION_LABELS = {"aws": "AWS", "aws-cn": "AWS China", "aws-us-gov": "AWS GovCloud (US)"}


def ecr_policy_document() -> tuple[str, str]:
    """The recommended policy (SPEC §4.3): the managed policy's name, and its document."""
    return aws.ECR_MANAGED_POLICY, json.dumps(aws.ECR_POLICY_DOCUMENT, indent=2)


def connector_test_regions(partition: str) -> tuple[tuple[str, ...], str]:
    """The regions a connector of the partition can be tested in, and the default one."""
    return aws.regions("ecr", partition), aws.DEFAULT_REGION[partition]


def region_groups() -> list[tuple[str, tuple[str, ...]]]:
    """The regions where ECR exists, by partition, for a form's choices."""
    return [(label, aws.regions("ecr", p)) for p, label in PARTITION_LABELS.items()]


def connectors_shared_with(team):
    """Connectors of the team and those shared with it, whatever their credentials."""
    return Connector.objects.filter(
        id__in=Connector.objects.filter(Q(team=team) | Q(shared_with=team)).values("id")
    )


def connectors_usable_by(team):
    """Connectors a team may use: its own and those shared with it, without those that
    reach the portal host's own AWS identity unless the team may use it (SPEC §3)."""
    connectors = connectors_shared_with(team)
    if not host_credentials_available(team):
        connectors = connectors.exclude(credentials=Connector.Credentials.HOST)
    return connectors


def connectors_listed(team) -> str:
    """The connectors a team may use, for messages about a connector variable: names and
    the IDs a variable must hold."""
    connectors = list(connectors_usable_by(team).order_by("name").values_list("name", "id"))
    if not connectors:
        return "it has none yet: a team admin creates one under Connectors"
    shown = ", ".join(f"{name} = {pk}" for name, pk in connectors[:10])
    more = f" and {len(connectors) - 10} more" if len(connectors) > 10 else ""
    return f"{shown}{more}"


def plan_input_variables(plan) -> dict[str, Variable]:
    """The plan's input variables: the team's global ones, overridden by the plan's own."""
    variables = {v.key: v for v in Variable.objects.filter(team_id=plan.team_id, plan=None)}
    variables.update({v.key: v for v in Variable.objects.filter(plan=plan)})
    return variables


HOST_NOT_ALLOWED = "HostCredentialsNotAllowed"
NOT_SHARED = "ConnectorNotShared"


def connector_refusal(team, connector) -> str | None:
    """Why the team may not use the connector now (HOST_NOT_ALLOWED or NOT_SHARED), or None.

    The host's credentials are checked for the team that uses them, not the owner: a
    connector shared with a team that was never granted them does not lend them to it.
    """
    if connector.credentials == Connector.Credentials.HOST and not host_credentials_available(
        team
    ):
        return HOST_NOT_ALLOWED
    if not connectors_shared_with(team).filter(pk=connector.pk).exists():
        return NOT_SHARED
    return None


def host_not_allowed_message(team, connector) -> str:
    return (
        f"Connector {connector.name} uses the portal host's own AWS identity, which is not "
        f"available to team {team.name}. A portal administrator can grant it."
    )


def colliding_task(task) -> TaskConfig | None:
    """Another enabled task of the plan writing the same variables where both are visible."""
    if not task.enabled:
        return None
    mine = {env_name(k, prefix="") for k in generated_keys(task.namespace)}
    others = (
        TaskConfig.objects.filter(job__plan_id=task.job.plan_id, enabled=True)
        .exclude(pk=task.pk)
        .select_related("job")
    )
    for other in others:
        both_local = task.scope == Scope.LOCAL and other.scope == Scope.LOCAL
        if both_local and other.job_id != task.job_id:
            continue  # each job sees only its own local variables
        if mine & {env_name(k, prefix="") for k in generated_keys(other.namespace)}:
            return other
    return None


# --- the dashboard -----------------------------------------------------------------------


def dashboard_tasks(
    *, team_ids, team: str = "", plan: str = "", status: str = "", at
) -> QuerySet[TaskConfig]:
    """The tasks of these teams, narrowed by the filters, most urgent first: no token at all
    (never fetched), then the soonest expiry."""
    tasks = TaskConfig.objects.filter(job__plan__team__in=team_ids)
    if team:
        tasks = tasks.filter(job__plan__team_id=team)
    if plan:
        tasks = tasks.filter(job__plan__key=plan)
    if status:
        tasks = tasks.filter(status_filter(status, at))
    return tasks.select_related("job__plan__team", "connector").order_by(
        F("expires_at").asc(nulls_first=True), "job__plan__key", "job__key", "position"
    )


def refreshable_tasks(*, team_ids, at) -> QuerySet[TaskConfig]:
    """What "Refresh all due" refreshes: enabled tasks of these teams that are due, or not
    ok (never run, failing, expired)."""
    due = Q(refresh_due_at__lte=at) | ~status_filter(Status.OK, at)
    return TaskConfig.objects.filter(due, job__plan__team__in=team_ids, enabled=True)


def teams_with_member_count(teams: QuerySet[Team]) -> QuerySet[Team]:
    """The teams with member_count: every member, whatever join the query filters on (a
    Count over `memberships` after filtering on them would count the matching row only)."""
    counts = (
        Membership.objects.filter(team=OuterRef("pk"))
        .order_by()
        .values("team")
        .annotate(n=Count("id"))
        .values("n")
    )
    return teams.annotate(member_count=Coalesce(Subquery(counts), 0))
