"""The portal as an OIDC issuer that AWS trusts (issue 17): web-identity connectors.

For each AWS call a web-identity connector makes, the portal signs a short-lived ID token
(`sub` naming the connector, `aud` sts.amazonaws.com) and sts:AssumeRoleWithWebIdentity
exchanges it for the role's credentials. AWS checks the signature against the keys the
portal publishes at /.well-known/jwks.json (found through
/.well-known/openid-configuration under ECRPORTAL_ISSUER_URL), so no AWS secret is stored.

Keys (RSA 2048, RS256) are stored encrypted like every secret. The first is made when first
needed; `manage.py rotate_signing_keys` publishes the next one before it signs and keeps
the old one published after it stops (see SigningKey).
"""

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import jwt
from cachetools import cached
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.db import transaction
from django.utils.timezone import now
from jwt.utils import base64url_encode

from tasks_app.identity.actor import Actor
from tasks_app.lib import aws, caches
from tasks_app.lib.crypto import plain
from tasks_app.lib.log_masking import secret_register
from tasks_app.models import Connector, SigningKey
from tasks_app.rules.connector_settings import ROLE_ARN
from tasks_app.services.audit import audit_record

ALGORITHM = "RS256"
KEY_BITS = 2048
# A token is exchanged at once; AWS accepts it only while it is valid.
TOKEN_SECONDS = 300
# Each process keeps the key list this long: another process's rotation reaches it within.
KEY_CACHE_SECONDS = caches.PORTAL_KEYS_SECONDS
PUBLISHED = "published"  # the one entry of caches.portal_keys
DEFAULT_OVERLAP_SECONDS = 3600
SOURCE_IDENTITY_CLAIM = "https://aws.amazon.com/source_identity"


class SigningKeyRefused(Exception):
    """A key operation that would leave AWS unable to verify the portal's tokens."""


def issuer_url() -> str:
    return str(settings.ISSUER_URL)


def issuer_host_path() -> str:
    """The issuer as IAM names its identity provider: host and path, no scheme."""
    parts = urlsplit(issuer_url())
    return f"{parts.netloc}{parts.path}".rstrip("/")


def jwks_url() -> str:
    return f"{issuer_url()}/.well-known/jwks.json"


def discovery_document() -> dict:
    return {
        "issuer": issuer_url(),
        "jwks_uri": jwks_url(),
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "scopes_supported": ["openid"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"],
    }


# --- keys --------------------------------------------------------------------------------


def _thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, without white space."""
    members = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"))
    return base64url_encode(hashlib.sha256(members.encode()).digest()).decode()


def _new_key(*, signs_from: datetime) -> SigningKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    public = {"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}
    kid = _thumbprint(public)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKey(
        kid=kid, algorithm=ALGORITHM, private_key=pem, public_jwk=public, signs_from=signs_from
    )


def _published(at: datetime):
    return SigningKey.objects.exclude(retires_at__lte=at)


def _is_published(key, at: datetime) -> bool:
    """The rule of _published for a key in hand (a SigningKey or a loaded one)."""
    return key.retires_at is None or key.retires_at > at


def _signing(keys, at: datetime):
    """Of these keys (SigningKeys or loaded ones), the one that signs at this time: the
    newest published key whose time has come. None when none has."""
    ready = [k for k in keys if _is_published(k, at) and k.signs_from <= at]
    return max(ready, key=lambda k: (k.signs_from, k.kid), default=None)


@dataclass(frozen=True)
class _Loaded:
    kid: str
    signs_from: datetime
    retires_at: datetime | None
    private_key: rsa.RSAPrivateKey  # decrypted once per process


@cached(caches.portal_private_keys, key=lambda key: key.kid, lock=caches.portal_keys_lock)
def _private_key(key: SigningKey) -> rsa.RSAPrivateKey:
    """The key's private key, decrypted once per process (a key ID's key never changes)."""
    loaded = serialization.load_pem_private_key(plain(key.private_key).encode(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise SigningKeyRefused(f"Signing key {key.kid} is not an RSA key.")
    return loaded


def _load(at: datetime) -> list[_Loaded]:
    """The published keys, read again and kept for KEY_CACHE_SECONDS."""
    keys = [
        _Loaded(key.kid, key.signs_from, key.retires_at, _private_key(key))
        for key in _published(at)
    ]
    with caches.portal_keys_lock:
        caches.portal_keys[PUBLISHED] = keys
    return keys


def _signing_loaded(at: datetime) -> _Loaded:
    """The key that signs at this time, from the keys this process keeps; read again when
    none of them signs, and made when the portal has none yet."""
    with caches.portal_keys_lock:
        kept = caches.portal_keys.get(PUBLISHED)
    chosen = _signing(kept, at) if kept is not None else None
    if chosen is None:
        chosen = _signing(_load(at), at)
    if chosen is None:
        made = signing_key_ensure()
        at = max(at, made.signs_from)
        chosen = _signing(_load(at), at)
    if chosen is None:
        raise SigningKeyRefused("The portal has no key that signs now.")
    return chosen


def _keys_forget() -> None:
    """A key was made or retired: this process reads the keys again at once (the others
    within KEY_CACHE_SECONDS)."""
    with caches.portal_keys_lock:
        caches.portal_keys.clear()
        caches.portal_private_keys.clear()


def signing_key_ensure() -> SigningKey:
    """The key that signs now, made (and audited) if the portal has none yet."""
    at = now()
    current = _signing(_published(at), at)
    if current is not None:
        return current
    with transaction.atomic():
        # Two processes that find no key at once may both make one: both are published and
        # the newest signs, so either token verifies.
        key = _new_key(signs_from=at)
        key.save()
        audit_record(
            action="signing_key.created",
            summary=f"Created the portal's first ID-token signing key {key.kid}",
            obj=key,
            changes={"kid": key.kid},
        )
    return key


def jwks() -> dict:
    """The public keys AWS may verify the portal's tokens with: every published key."""
    at = now()
    published = list(_published(at).order_by("-signs_from", "kid"))
    if _signing(published, at) is None:  # the portal's first key: made when first asked for
        signing_key_ensure()
        published = list(_published(now()).order_by("-signs_from", "kid"))
    return {
        "keys": [
            {**key.public_jwk, "kid": key.kid, "alg": key.algorithm, "use": "sig"}
            for key in published
        ]
    }


def signing_key_rotate(
    *, overlap: int = DEFAULT_OVERLAP_SECONDS, actor: Actor | None = None
) -> SigningKey:
    """A new key, published at once and signing after `overlap` seconds. The keys it
    replaces stay published until every token they signed has expired, the other processes
    have seen the new key, and `overlap` more seconds have passed (for verifiers' caches)."""
    if overlap < 0:
        raise SigningKeyRefused("The overlap is a number of seconds, 0 or more.")
    at = now()
    signs_from = at + timedelta(seconds=overlap)
    retires_at = signs_from + timedelta(seconds=KEY_CACHE_SECONDS + TOKEN_SECONDS + overlap)
    with transaction.atomic():
        new = _new_key(signs_from=signs_from)
        new.save()
        replaced = list(
            _published(at).exclude(pk=new.pk).exclude(retires_at__lte=retires_at).order_by("kid")
        )
        SigningKey.objects.filter(pk__in=[k.pk for k in replaced]).update(retires_at=retires_at)
        when = "%Y-%m-%d %H:%M:%S UTC"
        audit_record(
            action="signing_key.rotated",
            summary=f"New ID-token signing key {new.kid}, signing from "
            f"{signs_from.strftime(when)}; {len(replaced)} older key(s) published until "
            f"{retires_at.strftime(when)}",
            actor=actor,
            obj=new,
            changes={
                "kid": new.kid,
                "signs_from": signs_from.isoformat(),
                "retired": [k.kid for k in replaced],
                "retires_at": retires_at.isoformat(),
            },
        )
    _keys_forget()
    return new


def signing_key_retire(*, kid: str, actor: Actor | None = None) -> SigningKey:
    """Stop publishing a key now (a key that may have leaked). Refused for the only key
    that signs: rotate with --overlap 0 first, so the portal can go on signing."""
    at = now()
    key = SigningKey.objects.filter(kid=kid).first()
    if key is None or (key.retires_at is not None and key.retires_at <= at):
        raise SigningKeyRefused(f"No published signing key has the ID {kid}.")
    others = _published(at).exclude(pk=key.pk)
    if key.signs_from <= at and _signing(others, at) is None:
        raise SigningKeyRefused(
            f"Key {kid} is the only one that signs now; run rotate_signing_keys --overlap 0 "
            "first, then retire it."
        )
    with transaction.atomic():
        SigningKey.objects.filter(pk=key.pk).update(
            retires_at=max(at, key.signs_from + timedelta(microseconds=1))
        )
        audit_record(
            action="signing_key.retired",
            summary=f"Stopped publishing the ID-token signing key {kid}",
            actor=actor,
            obj=key,
            changes={"kid": kid},
        )
    _keys_forget()
    key.refresh_from_db()
    return key


def signing_keys_listed(*, at: datetime | None = None) -> list[tuple[SigningKey, str]]:
    """Every stored key, oldest first, with its state: "signing" (the one that signs now),
    "next" (published, signs later), "replaced" (published, no longer signs) or
    "retired" (no longer published)."""
    at = at or now()
    stored = list(SigningKey.objects.order_by("created"))
    signing = _signing(stored, at)

    def state(key: SigningKey) -> str:
        if not _is_published(key, at):
            return "retired"
        if key.signs_from > at:
            return "next"
        return "signing" if key == signing else "replaced"

    return [(key, state(key)) for key in stored]


def signing_keys_purge(*, at: datetime | None = None) -> int:
    """Delete keys retired more than a day ago: nothing verifies with them any more."""
    cutoff = (at or now()) - timedelta(days=1)
    deleted, _ = SigningKey.objects.filter(retires_at__lt=cutoff).delete()
    return deleted


# --- tokens ------------------------------------------------------------------------------


def web_identity_token(*, subject: str, caller: str, source_identity: bool = False) -> str:
    """A signed ID token for one sts:AssumeRoleWithWebIdentity call. It is a bearer
    credential for its few minutes: masked in logs like any secret."""
    at = now()
    key = _signing_loaded(at)
    issued = int(at.timestamp())
    claims = {
        "iss": issuer_url(),
        "sub": subject,
        "aud": aws.WEB_IDENTITY_AUDIENCE,
        "iat": issued,
        "nbf": issued,
        "exp": issued + TOKEN_SECONDS,
        "jti": str(uuid.uuid4()),
    }
    if source_identity:
        claims[SOURCE_IDENTITY_CLAIM] = caller
    token = jwt.encode(
        claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"}
    )
    secret_register(token)
    return token


def web_identity_source(connector: Connector):
    """What the AWS module calls for a fresh token whenever it needs one for the connector."""
    subject = connector.web_identity_subject
    source_identity = connector.set_source_identity

    def source(caller: str) -> str:
        return web_identity_token(subject=subject, caller=caller, source_identity=source_identity)

    return source


# --- what to create in AWS -----------------------------------------------------------------


def web_identity_setup(connector: Connector) -> dict:
    """The IAM identity provider and the role trust policy that let this connector assume
    its role, as people paste them into AWS; and whether AWS can reach the issuer."""
    provider = issuer_host_path()
    role = ROLE_ARN.fullmatch(connector.role_arn)
    account = role["account"] if role else "<account>"
    provider_arn = f"arn:{connector.partition}:iam::{account}:oidc-provider/{provider}"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    if connector.set_source_identity:
        actions.append("sts:SetSourceIdentity")
    trust_policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Federated": provider_arn},
                "Action": actions if len(actions) > 1 else actions[0],
                "Condition": {
                    "StringEquals": {
                        f"{provider}:aud": aws.WEB_IDENTITY_AUDIENCE,
                        f"{provider}:sub": connector.web_identity_subject,
                    }
                },
            }
        ],
    }
    identity_provider = {"Url": issuer_url(), "ClientIDList": [aws.WEB_IDENTITY_AUDIENCE]}
    return {
        "issuer": issuer_url(),
        "jwks_uri": jwks_url(),
        "issuer_is_https": urlsplit(issuer_url()).scheme == "https",
        "provider_arn": provider_arn,
        "identity_provider": json.dumps(identity_provider, indent=2),
        "trust_policy": json.dumps(trust_policy, indent=2),
        "subject": connector.web_identity_subject,
        "audience": aws.WEB_IDENTITY_AUDIENCE,
    }
