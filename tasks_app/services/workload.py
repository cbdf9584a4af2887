"""Workload identity (issue 17): a CI job's OIDC ID token in place of an API token.

The token must be signed (RS256 or ES256; `none` and HMAC are refused before anything
else) by a key of a trusted issuer's JWKS (fetched over https from its discovery document,
kept an hour, fetched again when an unknown key ID appears, at most once a minute), with
the issuer, an audience a trust rule names, exp/nbf/iat within a minute's leeway, and a
jti seen once. The first matching trust rule decides what it may see: exactly what a token
of that plan (or job) may see. Every use is audited with the issuer and the subject.
"""

import binascii
import fnmatch
import hashlib
import json
import threading
import time
import uuid
from datetime import UTC, datetime
from urllib.parse import urlsplit

import jwt
import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.timezone import now
from jwt.utils import base64url_decode

from tasks_app import ttl_cache
from tasks_app.actor import Actor
from tasks_app.models import ApiToken, TrustedIssuer, TrustRule
from tasks_app.services.audit import audit_record

ALGORITHMS = ("RS256", "ES256")
LEEWAY_SECONDS = 60
JWKS_SECONDS = 3600
REFETCH_SECONDS = 60  # an unknown kid fetches the keys again, this often at most


class WorkloadRefused(Exception):
    """The ID token is not accepted; the reason names no secret."""


def looks_like_jwt(raw: str) -> bool:
    return raw.count(".") == 2 and not raw.startswith(ApiToken.PREFIX)


def _https(url: str, what: str) -> str:
    if urlsplit(url).scheme != "https":
        raise WorkloadRefused(f"the {what} {url} is not https")
    return url


def _get_json(url: str) -> dict:
    verify = settings.OIDC_CA_BUNDLE or True
    response = requests.get(url, timeout=settings.OIDC_TIMEOUT, verify=verify)
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


class _Keys:
    """Each issuer's signing keys by kid, with when they were fetched."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_issuer: dict[str, tuple[float, dict]] = {}

    def clear(self) -> None:
        with self._lock:
            self._by_issuer.clear()

    def _fetch(self, issuer: str) -> dict:
        try:
            discovery = _get_json(f"{_https(issuer, 'issuer')}/.well-known/openid-configuration")
            if discovery.get("issuer") != issuer:
                raise WorkloadRefused(f"the discovery document of {issuer} names another issuer")
            jwks = _get_json(_https(str(discovery.get("jwks_uri", "")), "JWKS address"))
        except (requests.RequestException, ValueError) as e:
            raise WorkloadRefused(
                f"the keys of issuer {issuer} cannot be fetched ({e.__class__.__name__})"
            ) from None
        keys = {}
        for entry in jwks.get("keys", []):
            if (
                not isinstance(entry, dict)
                or "kid" not in entry
                or entry.get("use", "sig") != "sig"
            ):
                continue
            try:
                keys[str(entry["kid"])] = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                continue  # a key type this portal does not use
        return keys

    def key(self, issuer: str, kid: str) -> jwt.PyJWK:
        with self._lock:
            fetched_at, keys = self._by_issuer.get(issuer, (0.0, {}))
        age = time.monotonic() - fetched_at
        if age > JWKS_SECONDS or (kid not in keys and age > REFETCH_SECONDS):
            keys = self._fetch(issuer)
            with self._lock:
                self._by_issuer[issuer] = (time.monotonic(), keys)
        if kid not in keys:
            raise WorkloadRefused(f"issuer {issuer} has no key {kid!r}")
        return keys[kid]


signing_keys = _Keys()


def _matches(rule: TrustRule, claims: dict) -> bool:
    if not rule.conditions:
        return False  # a rule without a condition would trust every job of the issuer
    for claim, pattern in rule.conditions.items():
        value = claims.get(claim)
        if value is None or not fnmatch.fnmatchcase(str(value), str(pattern)):
            return False
    return True


def _trust(issuer_url: str) -> tuple[TrustedIssuer | None, list[TrustRule]]:
    """The issuer and its rules, kept per process for ECRPORTAL_API_CACHE_SECONDS (as API
    tokens are): a change takes effect within that time in every web process."""
    cached = ttl_cache.trust.get(issuer_url)
    if cached is None:
        issuer = TrustedIssuer.objects.filter(issuer=issuer_url).first()
        rules = list(issuer.rules.select_related("plan__team", "job")) if issuer else []
        cached = (issuer, rules)
        ttl_cache.trust.put(issuer_url, cached)
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


def _verified(raw: str) -> tuple[TrustedIssuer, dict, list[TrustRule]]:
    header, unverified = _unverified(raw)
    algorithm = header.get("alg")
    if algorithm not in ALGORITHMS:
        raise WorkloadRefused(f"the algorithm {algorithm!r} is not accepted (RS256, ES256)")
    issuer_url = str(unverified.get("iss") or "")
    issuer, rules = _trust(issuer_url)
    pinned = settings.OIDC_ISSUERS
    if issuer is None or (pinned and issuer_url not in pinned):
        raise WorkloadRefused(f"the issuer {issuer_url!r} is not trusted")
    if not rules:
        raise WorkloadRefused(f"no trust rule names the issuer {issuer_url}")
    if not header.get("kid"):
        raise WorkloadRefused("the token names no key (kid)")
    key = signing_keys.key(issuer_url, str(header["kid"]))
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
    return issuer, claims, rules


def workload_authenticate(*, raw: str, address: str | None) -> ApiToken:
    """The access an ID token gives, as an (unsaved) API token of the rule's plan or job;
    WorkloadRefused saying why not."""
    issuer, claims, rules = _verified(raw)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # Job rules first: the narrower access wins when both match.
    ordered = sorted(rules, key=lambda r: (r.job_id is None, r.created))
    rule = next((r for r in ordered if r.audience in audiences and _matches(r, claims)), None)
    subject = str(claims["sub"])
    if rule is None:
        raise WorkloadRefused(
            f"no trust rule of issuer {issuer.issuer} matches the subject {subject!r}"
        )
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
    """Trust a CI system's issuer. ValidationError by field for what cannot be trusted."""
    from django.core.exceptions import ValidationError

    issuer = issuer.strip().rstrip("/")
    errors = {}
    if urlsplit(issuer).scheme != "https" or not urlsplit(issuer).hostname:
        errors["issuer"] = ["Enter the issuer's https URL, e.g. https://gitlab.example.com."]
    elif settings.OIDC_ISSUERS and issuer not in settings.OIDC_ISSUERS:
        errors["issuer"] = [
            "ECRPORTAL_OIDC_ISSUERS pins the issuers this portal may trust: "
            + ", ".join(settings.OIDC_ISSUERS)
            + "."
        ]
    elif issuer == settings.ISSUER_URL:
        errors["issuer"] = [
            "This is the portal's own issuer: its ID tokens are for AWS (web-identity "
            "connectors), never a way into the portal's API."
        ]
    elif TrustedIssuer.objects.filter(issuer=issuer).exists():
        errors["issuer"] = [f"{issuer} is trusted already."]
    if errors:
        raise ValidationError(errors)
    ttl_cache.trust.clear()  # here at once; in the other processes within seconds
    with transaction.atomic():
        trusted = TrustedIssuer.objects.create(issuer=issuer, name=name, created_by=actor.user)
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
    ttl_cache.trust.clear()
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
    ttl_cache.trust.clear()
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
    ttl_cache.trust.clear()
    audit_record(
        action="trust_rule.deleted",
        summary=f"Deleted the trust rule {rule.name} of plan {rule.plan.key}",
        actor=actor,
        team=rule.plan.team,
        changes={"conditions": rule.conditions},
    )
