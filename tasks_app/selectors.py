"""Reads that views and services share: which tasks collide, the dashboard's rows, the regions
a form offers, teams with their member counts. Queries only; no side effects. (Which
connectors a team may use is the rule of use's: policy/usability.py.)"""

import json
from dataclasses import dataclass

from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce

from tasks_app.lib import aws
from tasks_app.models import (
    Membership,
    Status,
    TaskConfig,
    Team,
    status_filter,
)
from tasks_app.policy.visibility import seen_together
from tasks_app.rules.generated_variables import env_name, generated_keys

PARTITION_LABELS = {"aws": "AWS", "aws-cn": "AWS China", "aws-us-gov": "AWS GovCloud (US)"}


@dataclass(frozen=True)
class EcrPolicy:
    """What the identity behind a task needs, for the task's access (SPEC §4.3)."""

    access: str
    managed: str  # the AWS managed policy that grants it
    document: str  # pretty JSON, to copy
    registry: str = TaskConfig.Registry.PRIVATE

    @property
    def pull_only(self) -> bool:
        return self.access == TaskConfig.Access.PULL

    @property
    def public(self) -> bool:
        return self.registry == TaskConfig.Registry.PUBLIC

    @property
    def id(self) -> str:
        return f"{self.registry}-{self.access}"


def ecr_policy_document(
    access: str = TaskConfig.Access.PUSH_PULL, registry: str = TaskConfig.Registry.PRIVATE
) -> EcrPolicy:
    """The policy a task of this access and registry needs: push and pull, the recommended
    policy (the managed policy's document); pull only, the session policy the portal asks
    for the token with (aws.pull_only_policy), whose actions the identity must allow. ECR
    Public's name its own actions (ecr-public:*, and sts:GetServiceBearerToken)."""
    public = registry == TaskConfig.Registry.PUBLIC
    if access == TaskConfig.Access.PULL:
        document = json.dumps(json.loads(aws.pull_only_policy(public=public)), indent=2)
        managed = aws.ECR_PUBLIC_PULL_MANAGED_POLICY if public else aws.ECR_PULL_MANAGED_POLICY
        return EcrPolicy(access, managed, document, registry)
    full = aws.ECR_PUBLIC_POLICY_DOCUMENT if public else aws.ECR_POLICY_DOCUMENT
    managed = aws.ECR_PUBLIC_MANAGED_POLICY if public else aws.ECR_MANAGED_POLICY
    return EcrPolicy(access, managed, json.dumps(full, indent=2), registry)


def connector_test_regions(partition: str) -> tuple[tuple[str, ...], str]:
    """The regions a connector of the partition can be tested in, and the default one."""
    return aws.regions("ecr", partition), aws.DEFAULT_REGION[partition]


def region_groups() -> list[tuple[str, tuple[str, ...]]]:
    """The regions where ECR exists, by partition, for a form's choices."""
    return [(label, aws.regions("ecr", p)) for p, label in PARTITION_LABELS.items()]


def colliding_task(task) -> TaskConfig | None:
    """Another enabled task of the plan writing the same variables where some job sees both
    (policy/visibility.py)."""
    if not task.enabled:
        return None
    mine = {env_name(k, prefix="") for k in generated_keys(task.namespace)}
    others = (
        TaskConfig.objects.filter(job__plan_id=task.job.plan_id, enabled=True)
        .exclude(pk=task.pk)
        .select_related("job")
    )
    for other in others:
        together = seen_together(
            job_a=task.job_id, scope_a=task.scope, job_b=other.job_id, scope_b=other.scope
        )
        if together and mine & {env_name(k, prefix="") for k in generated_keys(other.namespace)}:
            return other
    return None


# --- the dashboard -----------------------------------------------------------------------


# The order of urgency: no token served (expired), the last run failed, never fetched, the
# rest; disabled tasks last.
URGENCY = [Status.EXPIRED, Status.FAILING, Status.NEVER_RUN, Status.OK, Status.DISABLED]


def dashboard_tasks(
    *, team_ids, team: str = "", plan: str = "", status: str = "", at
) -> QuerySet[TaskConfig]:
    """The tasks of these teams, narrowed by the filters, most urgent first: by status in
    URGENCY's order, then the soonest expiry. A page of it is read as ids (sorting narrow
    rows), then loaded by dashboard_rows."""
    tasks = TaskConfig.objects.filter(job__plan__team__in=team_ids)
    if team:
        tasks = tasks.filter(job__plan__team_id=team)
    if plan:
        tasks = tasks.filter(job__plan__key=plan)
    if status:
        tasks = tasks.filter(status_filter(status, at))
    urgency = Case(
        *(When(status_filter(s, at), then=Value(rank)) for rank, s in enumerate(URGENCY)),
        output_field=IntegerField(),
    )
    return tasks.order_by(
        urgency,
        F("credential__expires_at").asc(nulls_first=True),
        "job__plan__key",
        "job__key",
        "position",
    )


def dashboard_rows(ids) -> list[TaskConfig]:
    """The tasks of these ids, in this order, with what a dashboard row shows (one query)."""
    rows = TaskConfig.objects.filter(id__in=ids).select_related(
        "job__plan__team", "connector", "credential"
    )
    by_id = {task.id: task for task in rows}
    return [by_id[task_id] for task_id in ids]


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
