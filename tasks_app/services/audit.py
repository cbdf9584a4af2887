import logging
import uuid

from django.contrib.auth import get_user_model

from tasks_app.models import AuditEvent, Team
from tasks_app.net import client_address

logger = logging.getLogger("ecrportal.audit")


def audit_snapshot(obj, fields: list[str]) -> dict:
    """The fields' values as an audit event's changes can hold them (IDs as strings)."""
    values = {f: getattr(obj, f) for f in fields}
    return {f: str(v) if isinstance(v, uuid.UUID) else v for f, v in values.items()}


def audit_changes(before: dict, after: dict) -> dict:
    """{field: [old, new]} for the fields that differ."""
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def audit_record(
    *,
    action: str,
    summary: str,
    request=None,
    actor=None,
    actor_name: str = "",
    team: Team | None = None,
    obj=None,
    changes: dict | None = None,
    log_level: int = logging.INFO,
) -> AuditEvent:
    """Record who did what. ``changes`` must never contain a secret value."""
    caller = getattr(request, "user", None)
    if actor is None and caller is not None and caller.is_authenticated:
        if isinstance(caller, get_user_model()):
            actor = caller
        elif not actor_name:
            actor_name = caller.get_username()  # an API token: "token:ecrp_..."
    if actor is not None and not actor_name:
        actor_name = actor.get_username()
    event = AuditEvent.objects.create(
        action=action,
        summary=summary[:500],
        actor=actor,
        actor_name=actor_name[:150],
        team=team,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        changes=changes or {},
        address=client_address(request) if request is not None else None,
    )
    logger.log(
        log_level, "%s by %s from %s: %s", action, actor_name or "-", event.address or "-", summary
    )
    return event
