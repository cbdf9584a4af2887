"""The rules of SPEC §4.1 and §5 for Amazon ECR credentials tasks."""

import re

from django.core.exceptions import ValidationError
from django.db.models import Q

from tasks_app import aws
from tasks_app.connector_rules import ROLE_ARN, host_credentials_available
from tasks_app.generated import env_name, generated_keys

REFERENCE = re.compile(r"^\$\{bamboo\.(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,99})\}$")
REGISTRY_ID = re.compile(r"^\d{12}$")
NAMESPACE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
PARTITIONS = ("aws", "aws-cn", "aws-us-gov")


def reference_key(reference: str) -> str | None:
    """The variable key of a ${bamboo.<key>} reference, or None if it is not one."""
    match = REFERENCE.match(reference.strip())
    return match["key"] if match else None


def ecr_regions(partition: str | None = None) -> list[str]:
    partitions = [partition] if partition else PARTITIONS
    return [region for p in partitions for region in aws.regions("ecr", p)]


def connectors_shared_with(team):
    """Connectors of the team and those shared with it, whatever their credentials."""
    from tasks_app.models import Connector

    return Connector.objects.filter(
        id__in=Connector.objects.filter(Q(team=team) | Q(shared_with=team)).values("id")
    )


def connectors_usable_by(team):
    """Connectors a team may use: its own and those shared with it, without those that
    reach the portal host's own AWS identity unless the team may use it (SPEC §3)."""
    connectors = connectors_shared_with(team)
    if not host_credentials_available(team):
        connectors = connectors.exclude(credentials="host")
    return connectors


HOST_NOT_ALLOWED = "HostCredentialsNotAllowed"
NOT_SHARED = "ConnectorNotShared"


def connector_refusal(team, connector) -> str | None:
    """Why the team may not use the connector now (HOST_NOT_ALLOWED or NOT_SHARED), or None.

    The host's credentials are checked for the team that uses them, not the owner: a
    connector shared with a team that was never granted them does not lend them to it.
    """
    if connector.credentials == "host" and not host_credentials_available(team):
        return HOST_NOT_ALLOWED
    if not connectors_shared_with(team).filter(pk=connector.pk).exists():
        return NOT_SHARED
    return None


def host_not_allowed_message(team, connector) -> str:
    return (
        f"Connector {connector.name} uses the portal host's own AWS identity, which is not "
        f"available to team {team.name}. A portal administrator can grant it."
    )


def task_partition(task) -> str | None:
    """The partition the task's region must belong to, when known before a run."""
    if task.credentials_source == task.Source.CONNECTOR and task.connector_id:
        return task.connector.partition
    if task.credentials_source == task.Source.HOST and task.role_arn:
        match = ROLE_ARN.match(task.role_arn)
        return match["partition"] if match else None
    return None


def colliding_task(task):
    """Another enabled task of the plan writing the same variables where both are visible."""
    from tasks_app.models import Scope, TaskConfig

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


def task_clean(task) -> None:
    """Drop the settings that do not apply to the source, then check the rest."""
    Source = task.Source
    errors = {}

    if task.credentials_source == Source.CONNECTOR:
        task.role_arn = ""
        if task.connector_id:
            task.connector_variable = ""
    else:
        task.connector, task.connector_variable = None, ""

    team = task.job.plan.team
    if task.credentials_source == Source.CONNECTOR:
        if task.connector_id:
            refusal = connector_refusal(team, task.connector)
            if refusal == HOST_NOT_ALLOWED:
                errors["connector"] = host_not_allowed_message(team, task.connector)
            elif refusal == NOT_SHARED:
                errors["connector"] = f"Choose a connector that team {team.name} may use."
        elif task.connector_variable:
            if reference_key(task.connector_variable) is None:
                errors["connector_variable"] = (
                    "Enter a variable reference of the form ${bamboo.<key>}, e.g. "
                    "${bamboo.aws.connector}; its value must be a connector ID."
                )
        else:
            errors["connector"] = "Choose a connector, or use a connector variable."
    elif task.credentials_source == Source.HOST:
        if not host_credentials_available(team):
            errors["credentials_source"] = (
                f"The portal host's own role is not available to team {team.name}. "
                "A portal administrator can grant it."
            )
        task.role_arn = task.role_arn.strip()
        if task.role_arn and not ROLE_ARN.match(task.role_arn):
            errors["role_arn"] = (
                "Enter a role ARN of the form arn:<partition>:iam::<12-digit account>:"
                "role/<path/name>, e.g. arn:aws:iam::123456789012:role/ecr-push, or leave it "
                "empty to use the host's role as it is."
            )

    if task.region_variable:
        task.region = ""
        if reference_key(task.region_variable) is None:
            errors["region_variable"] = (
                "Enter a variable reference of the form ${bamboo.<key>}, e.g. "
                "${bamboo.aws.region}; its value must be a region code such as ap-southeast-2."
            )
    elif not task.region:
        errors["region"] = "Choose a region, or use a region variable."
    elif "connector" not in errors and "role_arn" not in errors:
        partition = task_partition(task)
        if task.region not in ecr_regions(partition):
            where = f"of partition {partition} " if partition else ""
            errors["region"] = (
                f"{task.region} is not a region code {where}where Amazon ECR exists; "
                "choose one such as ap-southeast-2."
            )

    task.registry_id = task.registry_id.strip()
    if task.registry_id and not REGISTRY_ID.match(task.registry_id):
        errors["registry_id"] = (
            "Enter the 12-digit AWS account ID of the registry, e.g. 123456789012, "
            "or leave it empty for the default registry of the credentials' account."
        )

    task.namespace = task.namespace.strip()
    if not NAMESPACE.match(task.namespace):
        errors["namespace"] = (
            "Enter dot-separated names that each start with a letter and contain letters, "
            "digits and underscores, e.g. custom.aws."
        )
    elif not errors:
        other = colliding_task(task)
        if other is not None:
            errors["namespace"] = (
                f"The task \u201c{other}\u201d of job {other.job.key} already writes "
                f"{other.namespace}.ecr.* variables that the same jobs see. "
                "Choose another namespace, or local scope in different jobs."
            )

    if errors:
        raise ValidationError(errors)
