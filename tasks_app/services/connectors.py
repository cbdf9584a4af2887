"""Connectors: saving, sharing, deleting and testing. Every change is audited, no secret is."""

from dataclasses import dataclass

from django.db import transaction
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.lib import aws, ecr_public
from tasks_app.lib.crypto import EncryptionError
from tasks_app.models import Connector, TaskConfig, Team
from tasks_app.policy.access import teams_using_connector
from tasks_app.policy.usability import (
    HOST_NOT_ALLOWED,
    REGION_NOT_IN_PARTITION,
    host_identity_refusal,
    public_registry_refusal,
)
from tasks_app.rules.connector_settings import policy_packed
from tasks_app.services.audit import audit_changes, audit_record, audit_snapshot
from tasks_app.services.issuer import web_identity_source
from tasks_app.services.validation import connector_validate

# What the audit trail records of a change: settings, never the secret itself.
AUDITED_FIELDS = [f for f in Connector.SETTINGS if f not in ("secret_access_key", "shared_with")]


def principal_for(connector: Connector) -> aws.Principal:
    """What the AWS module needs to obtain this connector's credentials."""
    web_identity = connector.credentials == Connector.Credentials.WEB_IDENTITY
    return aws.Principal(
        credentials=connector.credentials,
        principal_type=connector.principal_type,
        access_key_id=connector.access_key_id,
        secret_access_key=connector.secret_access_key or None,
        role_arn=connector.role_arn,
        external_id=connector.external_id,
        duration=connector.duration_or_default,
        policy=policy_packed(connector.session_policy) if connector.session_policy else "",
        set_source_identity=connector.set_source_identity,
        partition=connector.partition,
        web_identity_subject=connector.web_identity_subject if web_identity else "",
        token_source=web_identity_source(connector) if web_identity else None,
    )


def connector_save(
    *, connector: Connector, shared_with: list[Team], secret_changed: bool, actor: Actor
) -> Connector:
    """Create or update a connector and its sharing, with audit events for both."""
    connector_validate(connector, shared_with=shared_with)
    creating = connector._state.adding
    before = (
        {} if creating else audit_snapshot(Connector.objects.get(pk=connector.pk), AUDITED_FIELDS)
    )
    with transaction.atomic():
        old_shared = set() if creating else set(connector.shared_with.all())
        connector.updated = now()
        if creating:
            connector.created_by = actor.user
        connector.save()
        connector.shared_with.set(shared_with)

        after = audit_snapshot(connector, AUDITED_FIELDS)
        changes = audit_changes(before, after)
        if secret_changed:
            changes["secret_access_key"] = "changed (value not recorded)"
        if creating or changes:
            verb = "Created" if creating else "Updated"
            audit_record(
                action="connector.created" if creating else "connector.updated",
                summary=f"{verb} connector {connector.name}",
                actor=actor,
                team=connector.team,
                obj=connector,
                changes=after if creating else changes,
            )
        added, removed = set(shared_with) - old_shared, old_shared - set(shared_with)
        if added or removed:
            audit_record(
                action="connector.sharing_changed",
                summary=f"Changed the teams that may use connector {connector.name}",
                actor=actor,
                team=connector.team,
                obj=connector,
                changes={
                    "added": sorted(t.slug for t in added),
                    "removed": sorted(t.slug for t in removed),
                },
            )
    # Read the secret back as stored (a Secret), never keep the plain value around.
    connector.refresh_from_db(fields=["secret_access_key"])
    return connector


class ConnectorInUse(Exception):
    """Tasks still use the connector; the message says which."""


@transaction.atomic
def connector_delete(*, connector: Connector, actor: Actor) -> None:
    users = list(connector.tasks.select_related("job__plan")[:4])
    if users:
        count = connector.tasks.count()
        names = ", ".join(f"{t.job.plan.key}-{t.job.key}" for t in users[:3])
        raise ConnectorInUse(
            f"Connector {connector.name} is used by {count} task{'s' if count > 1 else ''} "
            f"({names}{', ...' if count > 3 else ''}). Change or delete them first."
        )
    audit_record(
        action="connector.deleted",
        summary=f"Deleted connector {connector.name}",
        actor=actor,
        team=connector.team,
        obj=connector,
        changes=audit_snapshot(connector, AUDITED_FIELDS),
    )
    connector.delete()


class HostCredentialsRefused(Exception):
    """The host's own AWS identity is not available to whoever asks for it."""


class PublicRegistryRefused(Exception):
    """Amazon ECR Public is out of the connector's partition's reach."""


@dataclass(frozen=True)
class TestOutcome:
    ok: bool
    message: str
    identity: aws.Identity | None = None
    error_code: str = ""
    missing_ecr_permission: bool = False


def connector_test(
    *,
    connector: Connector,
    region: str,
    actor: Actor,
    registry: str = TaskConfig.Registry.PRIVATE,
) -> TestOutcome:
    """sts:GetCallerIdentity, then ecr:GetAuthorizationToken in `region` (for the public
    registry, Amazon ECR Public's, in its own region), with the connector's credentials.

    The AWS calls run outside any database transaction; the outcome is stored
    on the connector and in the audit trail afterwards.
    """
    caller = aws.session_name(actor.name)
    public = registry == TaskConfig.Registry.PUBLIC
    if public:
        region = ecr_public.REGION
    identity = None
    try:
        if connector.credentials == Connector.Credentials.HOST:
            teams = teams_using_connector(actor.user, connector)
            refusal = host_identity_refusal(teams, connector_name=connector.name)
            if refusal:
                raise HostCredentialsRefused(refusal)
        if public and (partition_refusal := public_registry_refusal(connector.partition)):
            raise PublicRegistryRefused(partition_refusal.message)
        principal = principal_for(connector)
        identity = aws.caller_identity(principal, caller=caller, region=region, interactive=True)
        token = aws.ecr_authorization(
            principal, caller=caller, region=region, public=public, interactive=True
        )
    except aws.AwsError as e:
        prefix = (
            f"Signed in as {identity.arn} (account {identity.account}), but: " if identity else ""
        )
        outcome = TestOutcome(
            ok=False,
            message=prefix + e.explanation,
            identity=identity,
            error_code=e.code,
            missing_ecr_permission=(
                e.operation in ("ecr:GetAuthorizationToken", "ecr-public:GetAuthorizationToken")
                and e.code in ("AccessDenied", "AccessDeniedException")
            ),
        )
    except EncryptionError as e:
        outcome = TestOutcome(ok=False, message=str(e), error_code="EncryptionError")
    except HostCredentialsRefused as e:
        outcome = TestOutcome(ok=False, message=str(e), error_code=HOST_NOT_ALLOWED)
    except PublicRegistryRefused as e:
        outcome = TestOutcome(ok=False, message=str(e), error_code=REGION_NOT_IN_PARTITION)
    else:
        works = (
            f"ecr-public:GetAuthorizationToken works (Amazon ECR Public, from {region})"
            if public
            else f"ecr:GetAuthorizationToken works in {region}"
        )
        outcome = TestOutcome(
            ok=True,
            message=(
                f"Signed in as {identity.arn} (account {identity.account}). "
                f"{works}: {token.proxy_endpoint}."
            ),
            identity=identity,
        )

    Connector.objects.filter(pk=connector.pk).update(
        last_test_at=now(), last_test_ok=outcome.ok, last_test_message=outcome.message[:1000]
    )
    audit_record(
        action="connector.tested",
        summary=f"Tested connector {connector.name} in {region}"
        + (" for Amazon ECR Public" if public else "")
        + ": "
        + ("works" if outcome.ok else f"failed ({outcome.error_code})"),
        actor=actor,
        team=connector.team,
        obj=connector,
        changes={"region": region, "ok": outcome.ok, "error": outcome.error_code}
        | ({"registry": registry} if public else {}),
    )
    return outcome
