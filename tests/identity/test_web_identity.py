"""Web-identity connectors (issue 17, item 2): the portal is an OIDC issuer for AWS.

moto answers sts:AssumeRoleWithWebIdentity without looking at the token, so these tests
capture the token the portal actually sent to STS and verify it themselves, against the
keys the portal publishes at its own /.well-known/jwks.json, fetched over HTTP.
"""

import json
import re
from datetime import timedelta

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from tasks_app.identity.actor import SYSTEM, Actor
from tasks_app.lib import caches
from tasks_app.models import AuditEvent, Connector, Job, Plan, Role, SigningKey, TaskConfig
from tasks_app.services import claims, issuer, refresh
from tasks_app.services.connectors import connector_test
from tasks_app.services.runs import task_run
from tests.factories import PASSWORD, generated, make_team

pytestmark = pytest.mark.django_db

ROLE = "arn:aws:iam::123456789012:role/ecr-from-portal"
ISSUER = "https://ecr-portal.example.com"


@pytest.fixture(autouse=True)
def _issuer(settings):
    settings.ISSUER_URL = ISSUER
    caches.caches_clear()
    yield
    caches.caches_clear()


@pytest.fixture
def team(db):
    return make_team("Platform", alice=Role.ADMIN, vera=Role.VIEWER)


def _connector(team, **fields):
    fields.setdefault("name", "keyless")
    connector = Connector(
        team=team,
        credentials="web_identity",
        principal_type="assumed_role",
        role_arn=ROLE,
        **fields,
    )
    connector.full_clean()
    connector.save()
    return connector


def _task(connector, *, key="BUILD", plan=None):
    plan = plan or Plan.objects.create(team=connector.team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key=key, name=key.title())
    task = TaskConfig(job=job, region="eu-west-1", connector=connector)
    task.full_clean()
    task.save()
    return task


def _exchanges(aws_calls):
    return [c for c in aws_calls if c["operation"] == "sts:AssumeRoleWithWebIdentity"]


def _verify(token: str, jwks_url: str) -> dict:
    """The token's claims, verified as AWS verifies them: signature by a key of the JWKS,
    issuer, audience, lifetime."""
    signing_key = jwt.PyJWKClient(jwks_url, cache_keys=False).get_signing_key_from_jwt(token)
    return jwt.decode(
        token,
        signing_key.key,
        algorithms=["RS256"],
        audience="sts.amazonaws.com",
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )


def test_the_discovery_document_names_the_issuer_and_its_keys(client):
    response = client.get("/.well-known/openid-configuration")
    assert response.status_code == 200
    document = response.json()
    assert document["issuer"] == ISSUER
    assert document["jwks_uri"] == f"{ISSUER}/.well-known/jwks.json"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "max-age" in response["Cache-Control"]


def test_the_jwks_publishes_public_keys_only(client):
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}  # no private member (d, p, q…)
    assert key["kid"] == SigningKey.objects.get().kid
    # The first key is made when first needed, once.
    client.get("/.well-known/jwks.json")
    assert SigningKey.objects.count() == 1
    assert AuditEvent.objects.filter(action="signing_key.created").count() == 1


def test_the_private_key_is_stored_encrypted():
    issuer.signing_key_ensure()
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM tasks_app_signingkey")
        (stored,) = cursor.fetchone()
    assert "PRIVATE KEY" not in stored
    assert "PRIVATE KEY" in SigningKey.objects.get().private_key.reveal()


@pytest.mark.django_db(transaction=True)  # the live server's thread sees the key
def test_a_run_exchanges_a_token_the_portal_signed_for_the_connector(
    team, aws_endpoint, aws_calls, ecr_expiry, live_server, settings
):
    connector = _connector(team, session_duration=1800)
    task = _task(connector)
    alice = Actor(user=team.members.get(username="alice"))

    run = task_run(task=task, trigger="manual", actor=alice)

    assert run.outcome == "succeeded", run.error_message
    assert generated(task)["custom.aws.ecr.username"] == "AWS"
    (exchange,) = _exchanges(aws_calls)
    params = exchange["params"]
    assert params["RoleArn"] == ROLE
    assert params["RoleSessionName"] == "ecrportal-alice"
    assert params["DurationSeconds"] == 1800
    # Unsigned: the token is the credential; the host's own keys are never sent.
    assert "Authorization" not in exchange["headers"]
    claims_ = _verify(params["WebIdentityToken"], f"{live_server.url}/.well-known/jwks.json")
    assert claims_["sub"] == f"connector:{connector.id}"
    assert claims_["exp"] - claims_["iat"] == issuer.TOKEN_SECONDS
    assert "https://aws.amazon.com/source_identity" not in claims_
    # ECR was called with the role's temporary credentials.
    ecr = next(c for c in aws_calls if c["operation"] == "api.ecr:GetAuthorizationToken")
    assert "X-Amz-Security-Token" in ecr["headers"]


def test_source_identity_travels_as_a_claim(team, aws_endpoint, aws_calls, ecr_expiry, client):
    connector = _connector(team, set_source_identity=True)
    task = _task(connector)
    assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome == "succeeded"
    (exchange,) = _exchanges(aws_calls)
    token = exchange["params"]["WebIdentityToken"]
    assert "SourceIdentity" not in exchange["params"]  # not a parameter of this call
    jwk = client.get("/.well-known/jwks.json").json()["keys"][0]
    claims_ = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="sts.amazonaws.com"
    )
    assert claims_["https://aws.amazon.com/source_identity"] == "ecrportal-scheduler"


def test_every_exchange_gets_a_fresh_token(team, aws_endpoint, aws_calls):
    connector = _connector(team)
    first = issuer.web_identity_source(connector)("ecrportal-alice")
    second = issuer.web_identity_source(connector)("ecrportal-alice")
    assert first != second
    assert (
        jwt.decode(first, options={"verify_signature": False})["jti"]
        != jwt.decode(second, options={"verify_signature": False})["jti"]
    )


def test_test_connection_works_with_a_web_identity(team, aws_endpoint, aws_calls):
    connector = _connector(team)
    alice = Actor(user=team.members.get(username="alice"))

    outcome = connector_test(connector=connector, region="eu-west-1", actor=alice)

    assert outcome.ok, outcome.message
    assert outcome.identity.arn.endswith(":assumed-role/ecr-from-portal/ecrportal-alice")
    assert [c["operation"] for c in aws_calls] == [
        "sts:AssumeRoleWithWebIdentity",
        "sts:GetCallerIdentity",
        "api.ecr:GetAuthorizationToken",
    ]


def test_a_refused_token_is_explained_and_backs_off(team, aws_endpoint, aws_failure):
    connector = _connector(team)
    task = _task(connector)
    aws_failure("sts:AssumeRoleWithWebIdentity", "InvalidIdentityToken")
    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at=timezone.now())

    for claim in claims.refresh_claim():
        refresh.refresh_group(claim_id=claim.id)

    task.refresh_from_db()
    run = task.runs.get()
    assert run.outcome == "failed"
    assert run.error_class.endswith("InvalidIdentityToken")
    assert "identity provider for the portal's issuer" in run.error_message
    assert task.failures == 1
    assert task.refresh_due_at > timezone.now()


@pytest.mark.parametrize(
    ("code", "words"),
    [
        ("AccessDenied", "trust policy names the portal's identity provider"),
        ("ExpiredTokenException", "check the clock of the portal host"),
        ("IDPCommunicationError", "reachable from the internet over https"),
    ],
)
def test_test_connection_explains_aws_refusals(team, aws_endpoint, aws_failure, code, words):
    connector = _connector(team)
    aws_failure("sts:AssumeRoleWithWebIdentity", code, status=400)
    alice = Actor(user=team.members.get(username="alice"))
    outcome = connector_test(connector=connector, region="eu-west-1", actor=alice)
    assert not outcome.ok
    assert outcome.error_code == code
    assert words in outcome.message


def test_tasks_sharing_a_web_identity_connector_refresh_with_one_exchange(
    team, aws_endpoint, aws_calls, ecr_expiry
):
    connector = _connector(team)
    first = _task(connector)
    second = _task(connector, key="TEST", plan=first.job.plan)
    TaskConfig.objects.update(refresh_due_at=timezone.now() - timedelta(seconds=1))

    (claim,) = claims.refresh_claim()
    assert refresh.refresh_group(claim_id=claim.id) == 2

    assert len(_exchanges(aws_calls)) == 1
    ecr_calls = [c for c in aws_calls if c["operation"] == "api.ecr:GetAuthorizationToken"]
    assert len(ecr_calls) == 1
    assert (
        generated(first)["custom.aws.ecr.password"] == generated(second)["custom.aws.ecr.password"]
    )


def test_the_token_never_reaches_a_log_line(team, aws_endpoint, aws_calls, ecr_expiry, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    logging.getLogger("botocore").setLevel(logging.DEBUG)
    try:
        task = _task(_connector(team))
        assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome == "succeeded"
    finally:
        logging.getLogger("botocore").setLevel(logging.WARNING)
    token = _exchanges(aws_calls)[0]["params"]["WebIdentityToken"]
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text  # not even its signature


# --- rules -------------------------------------------------------------------------------


def test_a_web_identity_must_assume_a_role(team):
    connector = Connector(team=team, name="x", credentials="web_identity")
    with pytest.raises(ValidationError, match="sts:AssumeRoleWithWebIdentity"):
        connector.full_clean()


def test_settings_that_do_not_apply_are_dropped(team):
    connector = _connector(
        team,
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        external_id="not-for-web-identity",
    )
    connector.refresh_from_db()
    assert connector.access_key_id == ""
    assert not connector.secret_access_key
    assert connector.external_id == ""


def test_a_web_identity_connector_never_reaches_the_host_chain(team, aws_endpoint, settings):
    """The host's switch and grant do not matter: nothing of the host's identity is used."""
    settings.ALLOW_HOST_CREDENTIALS = False
    task = _task(_connector(team))
    assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome in ("succeeded", "expired")


# --- pages and API -----------------------------------------------------------------------


def test_the_connector_form_creates_a_web_identity_connector(team, client):
    client.login(username="alice", password=PASSWORD)
    response = client.post(
        reverse("connector_create"),
        {
            "owner": team.pk,
            "name": "keyless",
            "partition": "aws",
            "credentials": "web_identity",
            "principal_type": "assumed_role",
            "role_arn": ROLE,
            "unattended_use": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connector = Connector.objects.get(name="keyless")
    assert connector.credentials == "web_identity"


def test_the_connector_page_shows_the_provider_and_trust_policy(team, client):
    connector = _connector(team, set_source_identity=True)
    client.login(username="vera", password=PASSWORD)  # a viewer: nothing here is secret
    page = client.get(reverse("connector_detail", args=[connector.id])).content.decode()

    provider = json.loads(_pre(page, "identity-provider"))
    assert provider == {"Url": ISSUER, "ClientIDList": ["sts.amazonaws.com"]}
    policy = json.loads(_pre(page, "trust-policy"))
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {
        "Federated": "arn:aws:iam::123456789012:oidc-provider/ecr-portal.example.com"
    }
    assert statement["Action"] == ["sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity"]
    assert statement["Condition"]["StringEquals"] == {
        "ecr-portal.example.com:aud": "sts.amazonaws.com",
        "ecr-portal.example.com:sub": f"connector:{connector.id}",
    }
    assert "ECRPORTAL_ISSUER_URL" not in page  # https: no warning


def test_the_connector_page_warns_when_aws_cannot_reach_the_issuer(team, client, settings):
    settings.ISSUER_URL = "http://127.0.0.1:8000"
    connector = _connector(team)
    client.login(username="alice", password=PASSWORD)
    page = client.get(reverse("connector_detail", args=[connector.id])).content.decode()
    assert "AWS accepts only https issuers" in page


def _pre(page: str, element_id: str) -> str:
    import html

    match = re.search(rf'<pre class="code" id="{element_id}">(.*?)</pre>', page, re.S)
    assert match, element_id
    return html.unescape(match.group(1))


def test_the_api_creates_a_web_identity_connector(team, client):
    client.login(username="alice", password=PASSWORD)
    response = client.post(
        "/api/v1/connectors",
        {
            "team": str(team.pk),
            "name": "keyless-api",
            "credentials": "web_identity",
            "principal_type": "assumed_role",
            "role_arn": ROLE,
        },
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["credentials"] == "web_identity"


# --- rotation ----------------------------------------------------------------------------


def _kids(client):
    return [key["kid"] for key in client.get("/.well-known/jwks.json").json()["keys"]]


def _signed_by(connector) -> str:
    token = issuer.web_identity_source(connector)("ecrportal-alice")
    return jwt.get_unverified_header(token)["kid"]


def test_a_rotation_publishes_the_next_key_before_it_signs(team, client, monkeypatch):
    connector = _connector(team)
    old = _signed_by(connector)

    call_command("rotate_signing_keys", "--overlap", "600")
    new = SigningKey.objects.exclude(kid=old).get().kid

    assert set(_kids(client)) == {old, new}  # both published
    assert _signed_by(connector) == old  # the new one does not sign yet

    at = timezone.now()
    monkeypatch.setattr(issuer, "now", lambda: at + timedelta(seconds=601))
    assert _signed_by(connector) == new
    assert set(_kids(client)) == {old, new}  # the old one is still published...

    retires = SigningKey.objects.get(kid=old).retires_at
    assert retires == SigningKey.objects.get(kid=new).signs_from + timedelta(
        seconds=issuer.KEY_CACHE_SECONDS + issuer.TOKEN_SECONDS + 600
    )
    monkeypatch.setattr(issuer, "now", lambda: retires + timedelta(seconds=1))
    assert _kids(client) == [new]  # ...until its last tokens have expired
    assert AuditEvent.objects.filter(action="signing_key.rotated").count() == 1


def test_a_rotation_with_no_overlap_signs_at_once(team):
    connector = _connector(team)
    old = _signed_by(connector)
    new = issuer.signing_key_rotate(overlap=0)
    assert _signed_by(connector) == new.kid != old


def test_keys_rotate_under_the_newest_encryption_key_too(settings):
    from cryptography.fernet import Fernet

    issuer.signing_key_ensure()
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.ENCRYPTION_KEYS]
    call_command("rotate_encryption_keys")
    settings.ENCRYPTION_KEYS = settings.ENCRYPTION_KEYS[:1]
    assert "PRIVATE KEY" in SigningKey.objects.get().private_key.reveal()


def test_retiring_the_only_signing_key_is_refused(team):
    connector = _connector(team)
    kid = _signed_by(connector)
    with pytest.raises(CommandError, match="only one that signs"):
        call_command("rotate_signing_keys", f"--retire={kid}")  # a kid may start with "-"

    call_command("rotate_signing_keys", "--overlap", "0")
    # As typed at a shell, `--retire KID`: a base64url kid may start with "-".
    dashed = "-" + kid[1:]
    SigningKey.objects.filter(kid=kid).update(kid=dashed)
    kid = dashed
    call_command("rotate_signing_keys", "--retire", kid)
    assert kid not in [k["kid"] for k in issuer.jwks()["keys"]]
    assert _signed_by(connector) != kid


def test_the_command_lists_the_keys(capsys):
    issuer.signing_key_ensure()
    call_command("rotate_signing_keys", "--overlap", "60")
    out = capsys.readouterr().out
    assert "published, signing" in out
    assert "published, signs from" in out


def test_housekeeping_deletes_keys_retired_long_ago():
    key = issuer.signing_key_ensure()
    issuer.signing_key_rotate(overlap=0)
    long_ago = timezone.now() - timedelta(days=3)
    SigningKey.objects.filter(pk=key.pk).update(
        signs_from=long_ago, retires_at=long_ago + timedelta(days=1)
    )
    assert issuer.signing_keys_purge() == 1
    assert SigningKey.objects.count() == 1


def test_the_portal_cannot_trust_its_own_issuer_for_its_api():
    """Tokens signed for AWS must never open the portal's API, even if someone tries."""
    from tasks_app.services.workload import issuer_register

    with pytest.raises(ValidationError, match="portal's own issuer"):
        issuer_register(issuer=ISSUER, name="self", actor=SYSTEM)


def test_each_key_is_listed_with_its_state(team):
    first = issuer.signing_key_ensure()
    second = issuer.signing_key_rotate(overlap=0)
    third = issuer.signing_key_rotate(overlap=600)
    at = timezone.now() + timedelta(seconds=1)
    states = dict((key.kid, state) for key, state in issuer.signing_keys_listed(at=at))
    assert states == {first.kid: "replaced", second.kid: "signing", third.kid: "next"}
    later = SigningKey.objects.get(kid=first.kid).retires_at + timedelta(seconds=1)
    assert dict((k.kid, s) for k, s in issuer.signing_keys_listed(at=later))[first.kid] == (
        "retired"
    )


def test_the_issuer_documents_can_be_written_out_for_static_hosting(tmp_path, client, capsys):
    call_command("issuer_documents", str(tmp_path / "site"))
    folder = tmp_path / "site" / ".well-known"
    written = {
        name: json.loads((folder / name).read_text())
        for name in ("openid-configuration", "jwks.json")
    }
    assert (
        written["openid-configuration"] == client.get("/.well-known/openid-configuration").json()
    )
    assert written["jwks.json"] == client.get("/.well-known/jwks.json").json()
    assert f"{ISSUER}/.well-known/" in capsys.readouterr().out


def test_the_issuer_documents_command_says_why_it_cannot_write(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(CommandError, match="Cannot write into"):
        call_command("issuer_documents", str(tmp_path / "file"))
