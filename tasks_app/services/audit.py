import logging
import uuid

from tasks_app.identity.actor import SYSTEM, Actor
from tasks_app.lib.compiled_reads import CompiledInsert
from tasks_app.models import AuditEvent, Team

logger = logging.getLogger("ecrportal.audit")
# Audit events are written on hot paths too (every use of a CI job's ID token): the INSERT
# is compiled once per thread instead of on every create().
_insert = CompiledInsert(AuditEvent)


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
    actor: Actor | None = None,
    team: Team | None = None,
    obj=None,
    changes: dict | None = None,
    log_level: int = logging.INFO,
    once_key: str | None = None,
) -> AuditEvent:
    """Record who did what. ``changes`` must never contain a secret value. An event with a
    `once_key` is recorded once: a second one raises IntegrityError."""
    actor = actor or SYSTEM
    event = AuditEvent(
        action=action,
        summary=summary[:500],
        actor=actor.user,
        actor_name=actor.name[:150],
        team=team,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        changes=changes or {},
        address=actor.address,
        once_key=once_key,
    )
    _insert.insert(event)
    logger.log(
        log_level, "%s by %s from %s: %s", action, actor.name or "-", event.address or "-", summary
    )
    return event
