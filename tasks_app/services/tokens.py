"""API tokens (SPEC §8.4): created and shown once, stored hashed, revocable."""

import hashlib
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.lib.compiled_reads import CompiledRead, instance
from tasks_app.models import ApiToken, Job, Plan
from tasks_app.services.audit import audit_record

# Recording every use would write on every CI request; once a minute is enough.
LAST_USE_RESOLUTION = timedelta(seconds=60)


# What authenticating and deciding access read of a token (the plan and job load on demand),
# in one query compiled once per thread (tasks_app/lib/compiled_reads.py).
TOKEN_PATH_FIELDS = (
    "id",
    "team_id",
    "plan_id",
    "job_id",
    "hint",
    "name",  # its name in log lines and the audit log (ApiToken.actor_name)
    "expires_at",
    "revoked_at",
    "last_used_at",
)


_token_read = CompiledRead(
    lambda digest: (
        ApiToken.objects.filter(token_hash=digest).order_by().values_list(*TOKEN_PATH_FIELDS)
    ),
    field=ApiToken._meta.get_field("token_hash"),
    fields=TOKEN_PATH_FIELDS,
)


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def token_create(
    *, plan: Plan, job: Job | None, name: str, expires_at, actor: Actor
) -> tuple[ApiToken, str]:
    """Create a token. Returns it with the only copy of its plain text."""
    raw = ApiToken.PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        team=plan.team,
        plan=plan,
        job=job,
        name=name,
        token_hash=token_hash(raw),
        hint=raw[: len(ApiToken.PREFIX) + 6],
        created_by=actor.user,
        expires_at=expires_at,
    )
    audit_record(
        action="token.created",
        summary=f"Created API token {token.name} for {token.binding}",
        actor=actor,
        team=plan.team,
        obj=token,
        changes={
            "binding": token.binding,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, raw


@transaction.atomic
def token_revoke(*, token: ApiToken, actor: Actor) -> bool:
    """Revoke once; returns False if it was revoked already."""
    revoked = ApiToken.objects.filter(pk=token.pk, revoked_at=None).update(revoked_at=now())
    caches.tokens_forget([token.token_hash])  # at once in this process, soon in the others
    if revoked:
        audit_record(
            action="token.revoked",
            summary=f"Revoked API token {token.name} for {token.binding}",
            actor=actor,
            team=token.team,
            obj=token,
        )
    return bool(revoked)


def token_authenticate(*, raw: str, address: str | None) -> ApiToken | None:
    """The active token with this plain text, or None. Records its use.

    Lookups are kept for ECRPORTAL_API_CACHE_SECONDS per process; expiry is
    checked on every call.
    """
    if not raw.startswith(ApiToken.PREFIX):
        return None
    digest = token_hash(raw)
    with caches.tokens_lock:
        token = caches.tokens.get(digest)
    if token is None:
        # One short query: the columns access decisions need (plan and job load on demand).
        row = _token_read.get(digest)
        if row is None:
            return None
        token = instance(ApiToken, TOKEN_PATH_FIELDS, row)
        with caches.tokens_lock:
            caches.tokens[digest] = token
    if not token.active:
        return None
    stamp = now()
    if token.last_used_at is None or stamp - token.last_used_at > LAST_USE_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=stamp, last_used_from=address)
        token.last_used_at = stamp
    return token
