"""CI jobs sign in with their OIDC ID token (issue 17, item 1), against a real issuer: an https
server on 127.0.0.1 with its own CA, discovery document and JWKS (tests/oidc_issuer.py)."""

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.hazmat.primitives import serialization

from tasks_app.models import AuditEvent, TrustedIssuer, TrustRule
from tests.factories import make_connector, make_served_task, make_team, token_client

pytestmark = pytest.mark.django_db

AUDIENCE = "https://ecr-portal.example.com"


@pytest.fixture
def world(issuer):
    team = make_team("Platform")
    plan, job, task, _ = make_served_task(team, make_connector(team))
    trusted = TrustedIssuer.objects.create(issuer=issuer.url, name="Test CI")
    rule = TrustRule.objects.create(
        team=team,
        plan=plan,
        job=job,
        issuer=trusted,
        audience=AUDIENCE,
        conditions={"repository": "acme/web", "ref": "refs/heads/*"},
        name="web main",
    )
    return {"task": task, "plan": plan, "job": job, "rule": rule}


def _get(world, raw):
    return token_client(raw).get(f"/api/v1/tasks/{world['task'].id}/variables")


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_a_matching_id_token_reads_credentials_like_a_job_token(issuer, world, algorithm):
    response = _get(world, issuer.token(algorithm=algorithm))
    assert response.status_code == 200, response.content
    assert response.json()["variables"]
    event = AuditEvent.objects.get(action="token.oidc_used")
    assert event.changes == {
        "issuer": issuer.url,
        "subject": "repo:acme/web:ref:refs/heads/main",
        "rule": "web main",
    }
    # The subject, and the rule that admitted it (as a token's name follows its hint).
    assert event.actor_name == "token:oidc:repo:acme/web:ref:refs/heads/main (OIDC rule web main)"


def _hs256_with_the_public_key(issuer) -> str:
    def part(data) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    public = issuer.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{part({'alg': 'HS256', 'kid': 'rsa-1'})}.{part(issuer.claims())}"
    signature = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(issuer) -> str:
    import jwt

    return jwt.encode(issuer.claims(), None, algorithm="none")


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda i: i.token(aud="https://elsewhere.example.com"), "Audience doesn't match"),
        (
            lambda i: i.token(exp=int(time.time()) - 600, iat=int(time.time()) - 900),
            "Signature has expired",
        ),
        (lambda i: i.token(nbf=int(time.time()) + 600), "The token is not yet valid (nbf)"),
        (lambda i: i.token(kid="rotated-away"), "has no key 'rotated-away'"),
        (_unsigned, "the algorithm 'none' is not accepted"),
        (_hs256_with_the_public_key, "the algorithm 'HS256' is not accepted"),
        (lambda i: i.token(iss="https://evil.example.com"), "is not trusted"),
        (lambda i: i.token(repository="acme/other"), "no trust rule of issuer"),
        (lambda i: i.token(ref="refs/tags/v1"), "no trust rule of issuer"),
        (lambda i: i.token(jti=None), 'Token is missing the "jti" claim'),
        (lambda i: "not.a.token", "it is not a JSON Web Token"),
        (lambda i: f"{_b64(b'[' * 3000)}.{_b64(b'{}')}.sig", "it is not a JSON Web Token"),
        (lambda i: f"{_b64(bytes([0xFF, 0xFE]))}.{_b64(b'{}')}.sig", "not a JSON Web Token"),
        (lambda i: f"{_b64(b'[1]')}.{_b64(b'{}')}.sig", "it is not a JSON Web Token"),
        (lambda i: "\u00e9t\u00e9.x.y", "The token is not valid"),  # not UTF-8 as sent
    ],
)
def test_it_refuses_bad_id_tokens_with_a_reason(issuer, world, make, reason):
    raw = make(issuer)
    response = _get(world, raw)
    assert response.status_code == 401
    body = response.json()
    assert body["error"] == "unauthenticated"
    assert reason in body["detail"]
    assert raw not in response.content.decode()
    assert not AuditEvent.objects.filter(action="token.oidc_used").exists()


def test_a_replayed_token_is_refused_and_records_one_use(issuer, world):
    raw = issuer.token()
    assert _get(world, raw).status_code == 200
    again = _get(world, raw)
    assert again.status_code == 401
    assert "this ID token was used already (jti)" in again.json()["detail"]
    # The use is recorded once; the audit event is what refuses the replay.
    assert AuditEvent.objects.filter(action="token.oidc_used").count() == 1
    # A new token (another jti) is accepted.
    assert _get(world, issuer.token()).status_code == 200


def test_a_jwks_that_cannot_be_fetched_refuses_with_the_reason(issuer, world):
    issuer.jwks_fails = True
    response = _get(world, issuer.token())
    assert response.status_code == 401
    assert (
        f"the keys of issuer {issuer.url} cannot be fetched (HTTPError)"
        in (response.json()["detail"])
    )


def test_keys_are_fetched_once_and_again_for_a_new_kid_at_most_once_a_minute(issuer, world):
    for _ in range(3):
        assert _get(world, issuer.token()).status_code == 200
    assert issuer.jwks_fetches == 1
    _get(world, issuer.token(kid="new-key"))
    assert issuer.jwks_fetches == 1  # fetched under a minute ago: not again


def test_without_the_ca_the_issuer_is_not_trusted_over_tls(issuer, world, settings):
    settings.OIDC_CA_BUNDLE = ""
    response = _get(world, issuer.token())
    assert response.status_code == 401
    assert "cannot be fetched (SSLError)" in response.json()["detail"]


def test_pinned_issuers_limit_which_registered_issuers_count(issuer, world, settings):
    settings.OIDC_ISSUERS = ["https://token.actions.githubusercontent.com"]
    assert "is not trusted" in _get(world, issuer.token()).json()["detail"]


def test_the_rule_gives_exactly_a_job_tokens_access(issuer, world):
    from tasks_app.models import Job, TaskConfig

    other_job = Job.objects.create(plan=world["plan"], key="OTHER", name="Other")
    other = TaskConfig.objects.create(
        job=other_job, region="eu-west-1", connector=world["task"].connector, namespace="o"
    )
    client = token_client(issuer.token())
    assert client.get(f"/api/v1/tasks/{other.id}/variables").status_code == 404
    client = token_client(issuer.token())
    assert client.get("/api/v1/connectors").status_code == 403  # configuration: people only


def test_a_rule_without_conditions_trusts_nobody(issuer, world):
    TrustRule.objects.update(conditions={})
    assert "no trust rule of issuer" in _get(world, issuer.token()).json()["detail"]


def test_an_api_token_still_works_beside_id_tokens(world):
    from tests.factories import api_token

    raw = api_token(world["plan"], world["job"])
    assert _get(world, raw).status_code == 200


def test_a_deleted_rule_stops_matching_at_once_in_this_process(issuer, world):
    from tasks_app.identity.actor import SYSTEM
    from tasks_app.services.workload import trust_rule_delete

    assert _get(world, issuer.token()).status_code == 200
    trust_rule_delete(rule=world["rule"], actor=SYSTEM)
    response = _get(world, issuer.token())
    assert response.status_code == 401
    assert "no trust rule names the issuer" in response.json()["detail"]
