"""Workload identity (issue 17): a CI job's OIDC ID token in place of an API token.

The token must be signed (RS256 or ES256; `none` and HMAC are refused before anything
else) by a key of a trusted issuer's JWKS whose type fits the algorithm (PyJWT's
PyJWKClient, from the discovery document's jwks_uri, over https, kept an hour, fetched again
for an unknown key ID at most once a minute; a failed fetch is remembered for half a
minute and one request per issuer fetches at a time), with the issuer, an audience a trust
rule names, exp/nbf/iat within a minute's leeway (and an expiry at most 31 days ahead), and
a jti seen once. The portal's own issuer is never accepted.

Binding (issue 22): a token acts as exactly one plan (or job). When the rules that match
it bind it to more than one — rules of several plans, or of several jobs — the plan or task
the request addresses decides; a request that addresses none of them is refused. A job rule
wins over its plan's rule (narrower). Every use is audited with the issuer and the subject.
"""

import binascii
import fnmatch
import hashlib
import json
import ssl
import uuid
from datetime import UTC, datetime, timedelta
from typing import NamedTuple, NoReturn
from urllib.parse import urlsplit

import jwt
import requests
from cachetools import cached
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils.timezone import now
from jwt.utils import base64url_decode

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.models import ApiToken, TaskConfig, TrustedIssuer, TrustRule
from tasks_app.models.workload import CONTROL_CHARACTERS, OWN_ISSUER_REFUSAL, is_own_issuer
from tasks_app.services.admins import NotAdministrator, administrators_locked
from tasks_app.services.audit import audit_record

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 60
JWKS_SECONDS = caches.JWKS_SECONDS
REFETCH_SECONDS = 60  # an unknown kid fetches the keys again, this often at most
FAILURE_SECONDS = caches.JWKS_FAILURE_SECONDS  # a failed fetch is not tried again for this long
LONGEST_LIFETIME = timedelta(days=31)  # GitLab's ID tokens may live as long as a job's timeout
IDENTIFIER_MAX = 500  # an issuer URL or a key ID longer than this is no one's


class WorkloadRefused(Exception):
    """The ID token is not accepted; the reason names no secret."""


class Addressed(NamedTuple):
    """What a request addresses, from its URL: a plan (by key, and one of its jobs by the
    `job` query parameter) or a task (by ID)."""

    plan_key: str | None = None
    task_id: uuid.UUID | str | None = None
    job_key: str | None = None


def looks_like_jwt(raw: str) -> bool:
    return raw.count(".") == 2 and not raw.startswith(ApiToken.PREFIX)


def _https(url: str, what: str) -> str:
    if urlsplit(url).scheme != "https":
        raise WorkloadRefused(f"the {what} {url} is not https")
    return url


def _jwks_uri(issuer: str) -> str:
    """The issuer's jwks_uri, from its discovery document (over https, naming itself)."""
    verify = settings.OIDC_CA_BUNDLE or True
    url = f"{_https(issuer, 'issuer')}/.well-known/openid-configuration"
    response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=verify)
    response.raise_for_status()
    discovery = response.json()
    if not isinstance(discovery, dict) or discovery.get("issuer") != issuer:
        raise WorkloadRefused(f"the discovery document of {issuer} names another issuer")
    return _https(str(discovery.get("jwks_uri", "")), "JWKS address")


def _failed(issuer: str, reason: str) -> NoReturn:
    """Remember the failure, and forget the issuer's client: the requests of the next
    FAILURE_SECONDS get the failure at once, and the one after them starts afresh."""
    failure = f"{reason}; the portal tries again in {FAILURE_SECONDS} s"
    with caches.jwks_lock:
        caches.jwks_failures[issuer] = failure
        caches.jwks_clients.pop(issuer, None)
    raise WorkloadRefused(failure)


def _failure_raise(issuer: str) -> None:
    """WorkloadRefused with the issuer's remembered failure, if it has one."""
    with caches.jwks_lock:
        failure = caches.jwks_failures.get(issuer)
    if failure is not None:
        raise WorkloadRefused(failure)


def _unreachable(issuer: str, error: BaseException) -> NoReturn:
    cause = error.__cause__ or error  # urllib's HTTPError, URLError (its reason), a timeout
    reason = getattr(cause, "reason", None)
    name = (reason if isinstance(reason, BaseException) else cause).__class__.__name__
    _failed(issuer, f"the keys of issuer {issuer} cannot be fetched ({name})")


class _IssuerJWKS(jwt.PyJWKClient):
    """PyJWKClient (lifespan, cool-down for unknown key IDs, no redirects, one fetch at a
    time), for one issuer: a failed fetch is remembered before the next request in line
    could fetch again, and that request gets the failure instead."""

    def __init__(self, issuer: str, uri: str, **kwargs):
        super().__init__(uri, **kwargs)
        self.issuer = issuer

    def fetch_data(self):
        _failure_raise(self.issuer)
        try:
            return super().fetch_data()
        except (jwt.PyJWKClientError, ValueError, RecursionError) as e:
            _unreachable(self.issuer, e)


@cached(caches.jwks_clients, condition=caches.jwks_lock)
def _jwks_client(issuer: str) -> _IssuerJWKS:
    """The issuer's JWKS client, from its discovery document. One request per issuer makes
    it; the others wait, then find the client or the failure it left."""
    _failure_raise(issuer)
    try:
        uri = _jwks_uri(issuer)
    except WorkloadRefused as e:
        _failed(issuer, str(e))
    except (requests.RequestException, ValueError, RecursionError) as e:
        _failed(issuer, f"the keys of issuer {issuer} cannot be fetched ({e.__class__.__name__})")
    return _IssuerJWKS(
        issuer,
        uri,
        lifespan=JWKS_SECONDS,
        cooldown_duration=REFETCH_SECONDS,
        timeout=settings.OIDC_TIMEOUT,
        ssl_context=ssl.create_default_context(cafile=settings.OIDC_CA_BUNDLE or None),
    )


def _signing_key(issuer: str, kid: str) -> jwt.PyJWK:
    """The trusted issuer's key with this ID (PyJWKClient keeps its keys)."""
    _failure_raise(issuer)
    client = _jwks_client(issuer)
    try:
        return client.get_signing_key(kid)
    except (ValueError, RecursionError) as e:
        _unreachable(issuer, e)
    except jwt.PyJWTError:
        raise WorkloadRefused(f"issuer {issuer} has no key {kid!r}") from None


def _matches(rule: TrustRule, claims: dict) -> bool:
    if not rule.admits:
        return False  # disabled, or it pins no owner: it would trust every job of the issuer
    for claim, pattern in rule.conditions.items():
        value = claims.get(claim)
        if value is None or not fnmatch.fnmatchcase(str(value), str(pattern)):
            return False
    return True


def _trust(issuer_url: str) -> tuple[TrustedIssuer | None, list[TrustRule]]:
    """The issuer and its enabled rules, kept per process for ECRPORTAL_API_CACHE_SECONDS (as
    API tokens are): a change takes effect within that time in every web process."""
    with caches.trust_lock:
        cached = caches.trust.get(issuer_url)
    if cached is None:
        issuer = TrustedIssuer.objects.filter(issuer=issuer_url).first()
        rules = (
            list(issuer.rules.filter(disabled_at=None).select_related("plan__team", "job"))
            if issuer
            else []
        )
        cached = (issuer, rules)
        with caches.trust_lock:
            caches.trust[issuer_url] = cached
    return cached


def _segment(part: str) -> dict:
    decoded = json.loads(base64url_decode(part))
    if not isinstance(decoded, dict):
        raise ValueError("not a JSON object")
    return decoded


def _unverified(raw: str) -> tuple[dict, dict]:
    """The header and claims as the token states them, to find its issuer and key: read
    once, cheaply. Nothing is trusted from them; PyJWT's decode below checks it all again
    (its strict reading of a segment costs more than the signature)."""
    try:
        header, payload, _ = raw.split(".")
        return _segment(header), _segment(payload)
    except (ValueError, TypeError, RecursionError, binascii.Error):
        raise WorkloadRefused("it is not a JSON Web Token") from None


def _identifier(value, what: str) -> str:
    """An issuer URL or key ID as the token states it, refused before any lookup when it
    cannot be one (not text, too long, control characters: PostgreSQL refuses NUL)."""
    if not isinstance(value, str) or not value:
        raise WorkloadRefused(f"the token names no {what}")
    if len(value) > IDENTIFIER_MAX or CONTROL_CHARACTERS.search(value):
        raise WorkloadRefused(f"the token's {what} is not a valid one")
    return value


def _verified(raw: str) -> tuple[TrustedIssuer, dict, list[TrustRule]]:
    header, unverified = _unverified(raw)
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise WorkloadRefused(f"the algorithm {algorithm!r} is not accepted (RS256, ES256)")
    issuer_url = _identifier(unverified.get("iss"), "issuer (iss)")
    if is_own_issuer(issuer_url):
        raise WorkloadRefused(OWN_ISSUER_REFUSAL.rstrip("."))
    issuer, rules = _trust(issuer_url)
    pinned = settings.OIDC_ISSUERS
    if issuer is None or (pinned and issuer_url not in pinned):
        raise WorkloadRefused(f"the issuer {issuer_url!r} is not trusted")
    if not rules:
        raise WorkloadRefused(f"no trust rule names the issuer {issuer_url}")
    kid = _identifier(header.get("kid"), "key (kid)")
    key = _signing_key(issuer_url, kid)
    if key.algorithm_name != algorithm:  # an RSA key named for ES256, or the other way
        raise WorkloadRefused(
            f"the key {kid!r} is for {key.algorithm_name}, and the token says {algorithm}"
        )
    try:
        claims = jwt.decode(
            raw,
            key.key,
            algorithms=[algorithm],
            audience=sorted({rule.audience for rule in rules}),
            issuer=issuer_url,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub", "jti"]},
        )
    except jwt.PyJWTError as e:
        raise WorkloadRefused(str(e).rstrip(".")) from None
    except (TypeError, ValueError, OverflowError):
        raise WorkloadRefused("the token cannot be verified") from None
    if claims["exp"] > (now() + LONGEST_LIFETIME).timestamp():
        raise WorkloadRefused(f"the token expires more than {LONGEST_LIFETIME.days} days from now")
    return issuer, claims, rules


def _addressed_binding(addressed: Addressed, rules: list[TrustRule]) -> tuple:
    """(plan ID, job ID) of what the request addresses: a plan's rules and its jobs' (job
    None: a plan, whose result tasks its jobs see too); (None, None) for nothing these rules
    could bind to. A task costs one query, made only when binding is in doubt."""
    if addressed.plan_key:
        plan = next((r.plan_id for r in rules if r.plan.key == addressed.plan_key), None)
        job = next(
            (
                r.job_id
                for r in rules
                if r.plan_id == plan and r.job and r.job.key == addressed.job_key
            ),
            None,
        )
        return plan, job
    if addressed.task_id:
        found = (
            TaskConfig.objects.filter(pk=addressed.task_id)
            .values_list("job__plan_id", "job_id")
            .first()
        )
        return found or (None, None)
    return None, None


def _several(rules: list[TrustRule]) -> bool:
    plans = {rule.plan_id for rule in rules}
    jobs = {rule.job_id for rule in rules if rule.job_id is not None}
    return len(plans) > 1 or len(jobs) > 1


def _rule_for(matching: list[TrustRule], addressed: Addressed | None) -> TrustRule:
    """The one rule that binds the token (see the module's docstring)."""
    candidates = matching
    if _several(candidates):
        plan_id, job_id = _addressed_binding(addressed or Addressed(), candidates)
        candidates = [
            rule
            for rule in candidates
            if rule.plan_id == plan_id and (job_id is None or rule.job_id in (None, job_id))
        ]
        if not candidates or _several(candidates):
            raise WorkloadRefused(
                "trust rules of several plans or jobs match this token, and the request "
                "does not address one of them; fetch a task or a plan's variables, or ask "
                "the teams to narrow their rules"
            )
    # Job rules first: the narrower access wins when both match.
    return min(candidates, key=lambda r: (r.job_id is None, r.created))


def workload_authenticate(
    *, raw: str, address: str | None, addressed: Addressed | None = None
) -> ApiToken:
    """The access an ID token gives, as an (unsaved) API token of the rule's plan or job;
    WorkloadRefused saying why not."""
    issuer, claims, rules = _verified(raw)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    matching = [r for r in rules if r.audience in audiences and _matches(r, claims)]
    subject = str(claims["sub"])
    if not matching:
        raise WorkloadRefused(
            f"no trust rule of issuer {issuer.issuer} matches the subject {subject!r}"
        )
    rule = _rule_for(matching, addressed)
    expires = datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
    token = ApiToken(
        id=uuid.uuid4(),
        team_id=rule.team_id,
        plan=rule.plan,
        job=rule.job,
        name=f"OIDC rule {rule.name}",
        hint=f"oidc:{subject[:40]}",
        expires_at=expires,
        last_used_at=now(),  # nothing to record: the audit event below says it
    )
    # One INSERT both records the use and refuses a replay: the audit event's once_key
    # (issuer and jti) is unique, for good (a jti is never meant to come again).
    once = hashlib.sha256(f"{issuer.issuer}\n{claims['jti']}".encode()).hexdigest()
    try:
        with transaction.atomic():
            audit_record(
                action="token.oidc_used",
                summary=f"ID token of {subject} from {issuer.name} used as {token.binding}",
                actor=Actor(token=token, address=address),
                team=rule.plan.team,
                obj=rule,
                changes={"issuer": issuer.issuer, "subject": subject, "rule": rule.name},
                once_key=once,
            )
    except IntegrityError:
        raise WorkloadRefused("this ID token was used already (jti)") from None
    return token


# --- configuration: trusted issuers (superusers) and trust rules (team admins) ------------


def issuer_register(*, issuer: str, name: str, actor: Actor) -> TrustedIssuer:
    """Trust a CI system's issuer. ValidationError by field for what cannot be trusted
    (TrustedIssuer.clean: the admin holds it to the same rules)."""
    trusted = TrustedIssuer(issuer=issuer, name=name, created_by=actor.user)
    trusted.full_clean()
    issuer = trusted.issuer
    caches.trust_clear()  # here at once; in the other processes within seconds
    with transaction.atomic():
        trusted.save(force_insert=True)
        audit_record(
            action="oidc_issuer.registered",
            summary=f"Trusted the OIDC issuer {name} ({issuer})",
            actor=actor,
            obj=trusted,
            changes={"issuer": issuer},
        )
    return trusted


@transaction.atomic
def issuer_remove(*, issuer: TrustedIssuer, actor: Actor) -> None:
    rules = issuer.rules.count()
    issuer.delete()
    caches.trust_clear()
    audit_record(
        action="oidc_issuer.removed",
        summary=f"Stopped trusting the OIDC issuer {issuer.name} ({issuer.issuer}) and its "
        f"{rules} trust rule(s)",
        actor=actor,
        changes={"issuer": issuer.issuer, "rules": rules},
    )


@transaction.atomic
def trust_rule_create(*, rule: TrustRule, actor: Actor) -> TrustRule:
    """Save a new rule after its checks (TrustRule.clean), audited."""
    rule.created_by = actor.user
    rule.full_clean()
    rule.save()
    caches.trust_clear()
    audit_record(
        action="trust_rule.created",
        summary=f"ID tokens of {rule.issuer.name} matching {rule.conditions} now act as "
        f"{'job ' + rule.plan.key + '-' + rule.job.key if rule.job else 'plan ' + rule.plan.key}",
        actor=actor,
        team=rule.plan.team,
        obj=rule,
        changes={"audience": rule.audience, "conditions": rule.conditions},
    )
    return rule


@transaction.atomic
def trust_rule_delete(*, rule: TrustRule, actor: Actor) -> None:
    rule.delete()
    caches.trust_clear()
    audit_record(
        action="trust_rule.deleted",
        summary=f"Deleted the trust rule {rule.name} of plan {rule.plan.key}",
        actor=actor,
        team=rule.plan.team,
        changes={"conditions": rule.conditions},
    )


def trust_rules_disable(*, created_by, reason: str, actor: Actor) -> int:
    """Disable the enabled trust rules someone made (their account was deactivated), at
    once in this process, audited in each team. Returns how many."""
    rules = list(
        TrustRule.objects.filter(created_by=created_by, disabled_at=None).select_related(
            "plan__team"
        )
    )
    if not rules:
        return 0
    TrustRule.objects.filter(pk__in=[rule.pk for rule in rules]).update(
        disabled_at=now(), disabled_reason=reason[:300]
    )
    caches.trust_clear()  # here at once; in the other processes within seconds
    for rule in rules:
        audit_record(
            action="trust_rule.disabled",
            summary=f"Disabled the trust rule {rule.name} of plan {rule.plan.key}: {reason}",
            actor=actor,
            team=rule.plan.team,
            obj=rule,
            changes={"conditions": rule.conditions, "reason": reason},
        )
    return len(rules)


@transaction.atomic
def trust_rule_enable(*, rule: TrustRule, actor: Actor) -> bool:
    """A portal administrator enables a disabled rule again, which is theirs from now on;
    False if it was enabled. A rule that pins no owner stays disabled (ValidationError)."""
    try:
        administrators_locked(actor)  # still one, now
    except NotAdministrator:
        raise PermissionDenied("Only portal administrators enable disabled trust rules.") from None
    enabler = actor.user
    assert enabler is not None  # an administrator, checked above
    rule.full_clean(exclude=["created_by"])
    if not TrustRule.objects.filter(pk=rule.pk, disabled_at__isnull=False).update(
        disabled_at=None, disabled_reason="", created_by=enabler
    ):
        return False
    caches.trust_clear()
    audit_record(
        action="trust_rule.enabled",
        summary=f"Enabled the trust rule {rule.name} of plan {rule.plan.key} again, now "
        f"under {enabler.get_username()}",
        actor=actor,
        team=rule.plan.team,
        obj=rule,
        changes={"conditions": rule.conditions},
    )
    return True
