"""May this team's task run: one rule for saving a task and for running it (SPEC §3, §4).

`task_use_refusal` decides over plain values and returns None, or a Refusal: a code (a run's
error class, the API's field error) and one message. `task_refusal` gathers those values for
a task. Save-time validation (services/validation.py) turns a refusal into a field error; a
run (services/run_inputs.py) into a RunError; both show the refusal's own message, so a form,
the API and a run's history read the same words.

What a team may use: its own connectors and those shared with it, except connectors that
reach the portal host's own AWS identity unless a portal administrator granted that identity
to the team (the team that uses a connector, not its owner).
"""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q, QuerySet

from tasks_app.lib import aws, ecr_public
from tasks_app.models import Connector, TaskConfig, TaskRun, Team
from tasks_app.rules.connector_settings import ROLE_ARN, host_credentials_available
from tasks_app.rules.task_settings import REGION_EXAMPLE

# Refusal codes: a run's error class, and the code a client can test for.
HOST_NOT_ALLOWED = aws.HOST_NOT_ALLOWED
NOT_SHARED = "ConnectorNotShared"
UNATTENDED_NOT_ALLOWED = "UnattendedUseNotAllowed"
REGION_NOT_IN_PARTITION = "RegionNotInPartition"
PULL_ONLY_NOT_POSSIBLE = "PullOnlyNotPossible"

# What unattended use is: every run but a person's Run now on the task's page (SPEC §3 says
# "scheduled refresh and API tokens"; a person's run through the API counts too, the
# stricter of the two readings the code and the pages had).
UNATTENDED_USE = "scheduled refreshes and API calls (CI jobs' tokens, and people's)"


def unattended(trigger: str) -> bool:
    """Whether a run with this trigger is unattended."""
    return trigger != TaskRun.Trigger.MANUAL


# The kinds of principal that take a session policy: assuming a role, federating a user.
PULL_ONLY_KINDS = ("assumed_role", "federated_user")


@dataclass(frozen=True)
class Refusal:
    """Why something may not be done: `code` for programs, `message` for people, and the
    task setting it is about (`field`), where a form shows it."""

    code: str
    message: str
    field: str = ""


@dataclass(frozen=True)
class ConnectorFacts:
    """What the rule needs of a connector."""

    name: str
    uses_host_identity: bool
    partition: str
    principal_type: str
    has_session_policy: bool
    unattended_use: bool

    @classmethod
    def of(cls, connector: Connector) -> "ConnectorFacts":
        return cls(
            name=connector.name,
            uses_host_identity=connector.credentials == Connector.Credentials.HOST,
            partition=connector.partition,
            principal_type=connector.principal_type,
            has_session_policy=bool(connector.session_policy),
            unattended_use=connector.unattended_use,
        )


def credentials_partition(
    *, source: str, connector: Connector | ConnectorFacts | None, role_arn: str
) -> str | None:
    """The partition of the credentials a task uses, when known: its connector's, or its
    role ARN's for the host's identity. The task's region must be in it."""
    if source == TaskConfig.Source.HOST:
        match = ROLE_ARN.fullmatch(role_arn) if role_arn else None
        return match["partition"] if match else None
    return connector.partition if connector is not None else None


def host_identity_reason(teams) -> str | None:
    """Why none of these teams may use the portal host's own AWS identity (to follow "it
    is"), or None when one of them may."""
    teams = list(teams)
    if not settings.ALLOW_HOST_CREDENTIALS:
        return aws.HOST_IDENTITY_OFF
    if any(host_credentials_available(team) for team in teams):
        return None
    names = ", ".join(team.name for team in teams)
    who = f"team {names}" if len(teams) == 1 else f"teams {names}" if teams else "your teams"
    return f"not granted to {who}; a portal administrator grants it on the Host credentials page"


def host_identity_sentence(reason: str, *, connector_name: str | None = None) -> str:
    """The one message of this refusal, on pages, in forms, the API, runs and tests."""
    if connector_name is None:
        return f"The portal host's own AWS identity is {reason}."
    return (
        f"Connector {connector_name} uses the portal host's own AWS identity, which is {reason}."
    )


def host_identity_refusal(teams, *, connector_name: str | None = None) -> str | None:
    """host_identity_reason as a sentence, or None when one of the teams may use it."""
    reason = host_identity_reason(teams)
    if reason is None:
        return None
    return host_identity_sentence(reason, connector_name=connector_name)


def task_use_refusal(
    *,
    team_name: str,
    host_reason: str | None,
    source: str,
    connector: ConnectorFacts | None,
    connector_shared: bool,
    role_arn: str,
    region: str | None,
    access: str,
    unattended: bool,
    registry: str = TaskConfig.Registry.PRIVATE,
) -> Refusal | None:
    """Why a task of team `team_name` may not run with these settings, or None.

    `host_reason` is host_identity_reason for the team (None: granted); `source` is the
    task's credentials source; `connector` is None for the host's identity,
    and for a connector variable that is not resolved yet (then only the rest is checked).
    `region` is None when it comes from a variable (resolving it checks it). `unattended`:
    a scheduled refresh or an API call, which the connector must allow.
    """
    if source == TaskConfig.Source.HOST and host_reason:
        message = host_identity_sentence(host_reason)
        return Refusal(HOST_NOT_ALLOWED, message, "credentials_source")
    if source == TaskConfig.Source.CONNECTOR and connector is not None:
        if connector.uses_host_identity and host_reason:
            message = host_identity_sentence(host_reason, connector_name=connector.name)
            return Refusal(HOST_NOT_ALLOWED, message, "connector")
        if not connector_shared:
            # Not named: a connector the team may not use is one it may not know about.
            return Refusal(
                NOT_SHARED,
                f"Team {team_name} may not use this connector: it is neither the team's own "
                "nor shared with it. Choose another connector.",
                "connector",
            )
        if unattended and not connector.unattended_use:
            return Refusal(
                UNATTENDED_NOT_ALLOWED,
                f"Connector {connector.name} does not allow unattended use "
                f"({UNATTENDED_USE}); run the task from its page.",
                "connector",
            )
    partition = credentials_partition(source=source, connector=connector, role_arn=role_arn)
    if registry == TaskConfig.Registry.PUBLIC and (refusal := public_registry_refusal(partition)):
        return refusal
    if region and region not in aws.ecr_regions(partition):
        where = f"of partition {partition} " if partition else ""
        return Refusal(
            REGION_NOT_IN_PARTITION,
            f"{region} is not a region code {where}where Amazon ECR exists; "
            f"choose one such as {REGION_EXAMPLE}.",
            "region",
        )
    if access == TaskConfig.Access.PULL:
        message = _pull_only_problem(source=source, connector=connector, role_arn=role_arn)
        if message:
            return Refusal(PULL_ONLY_NOT_POSSIBLE, message, "access")
    return None


def public_registry_refusal(partition: str | None) -> Refusal | None:
    """Why credentials of `partition` cannot reach Amazon ECR Public, or None (partition aws,
    or not known yet): for a task's settings and runs, and a connector's test."""
    if partition in (None, "aws"):
        return None
    return Refusal(
        REGION_NOT_IN_PARTITION,
        f"Amazon ECR Public exists in partition aws alone (its tokens come from "
        f"{ecr_public.REGION}), and these credentials are of partition {partition}. "
        "Choose credentials of partition aws, or a private registry.",
        "registry",
    )


def _pull_only_problem(*, source: str, connector: ConnectorFacts | None, role_arn: str):
    """A pull-only token comes from a session policy that allows pulling alone, which AWS
    takes only when assuming a role or federating a user, and only one per call."""
    if source == TaskConfig.Source.HOST:
        if role_arn:
            return None
        return (
            "Pull only with the portal host's identity needs a role to assume (Role ARN): "
            "the pull-only session policy is passed when assuming it."
        )
    if connector is None:
        return None  # a connector variable: checked when it resolves
    if connector.principal_type not in PULL_ONLY_KINDS:
        return (
            f"Pull only needs a connector that assumes a role or becomes a federated user; "
            f"connector {connector.name} does not, so its tokens carry all of its "
            "permissions. Choose such a connector, or push and pull."
        )
    if connector.has_session_policy:
        return (
            f"Pull only passes a session policy of its own, and connector {connector.name} has "
            "one already (AWS takes one per call). Narrow the connector's policy to pulling "
            "instead, or choose push and pull."
        )
    return None


# --- the connectors a team may use ---------------------------------------------------------


def connectors_shared_with(team: Team) -> QuerySet[Connector]:
    """Connectors of the team and those shared with it, whatever their credentials."""
    return Connector.objects.filter(
        id__in=Connector.objects.filter(Q(team=team) | Q(shared_with=team)).values("id")
    )


def connectors_usable_by(team: Team) -> QuerySet[Connector]:
    """The connectors the rule lets the team use: its own and those shared with it, without
    those that reach the portal host's identity unless the team was granted it."""
    connectors = connectors_shared_with(team)
    if not host_credentials_available(team):
        connectors = connectors.exclude(credentials=Connector.Credentials.HOST)
    return connectors


def connectors_listed(team: Team) -> str:
    """The connectors a team may use, for messages about a connector variable: names and
    the IDs a variable must hold."""
    connectors = list(connectors_usable_by(team).order_by("name").values_list("name", "id"))
    if not connectors:
        return "it has none yet: a team admin creates one under Connectors"
    shown = ", ".join(f"{name} = {pk}" for name, pk in connectors[:10])
    more = f" and {len(connectors) - 10} more" if len(connectors) > 10 else ""
    return f"{shown}{more}"


def task_refusal(
    *, task: TaskConfig, connector: Connector | None, unattended: bool, memo: dict | None = None
) -> Refusal | None:
    """The rule for this task of its plan's team, with `connector` (the task's own, the one
    its variable names, or None when the host's identity is used or the variable is not
    resolved yet). `memo` shares the lookups of one refresh group (same team, connector)."""
    memo = {} if memo is None else memo
    team = task.job.plan.team
    shared = True
    if connector is not None:
        key = ("shared", team.pk, connector.pk)
        if key not in memo:
            memo[key] = connectors_shared_with(team).filter(pk=connector.pk).exists()
        shared = memo[key]
    return task_use_refusal(
        team_name=team.name,
        host_reason=host_identity_reason([team]),
        source=task.credentials_source,
        connector=ConnectorFacts.of(connector) if connector is not None else None,
        connector_shared=shared,
        role_arn=task.role_arn,
        region=None if task.region_variable else task.region,
        access=task.access,
        unattended=unattended,
        registry=task.registry,
    )
