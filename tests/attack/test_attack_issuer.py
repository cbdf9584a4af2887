"""The portal's own OIDC issuer surface, attacked (issue 22, item 14).

The attacker: anyone on the internet, since /.well-known/openid-configuration and
/.well-known/jwks.json are public (AWS fetches them without signing in); and anyone who gets
hold of an ID token the portal signed for AWS (a web-identity connector's token for
sts:AssumeRoleWithWebIdentity: a log line, a proxy, a captured request). What they control:
the method, Host and X-Forwarded-* headers of requests to the documents, and such tokens,
which they may replay against the portal's own API or re-label. Also someone with a database
write who put the portal's own issuer in TrustedIssuer past the model's rules (an old row, a
restored dump, a shell). Where a token must be verifiable, the portal's issuer is served
over real https on 127.0.0.1 with exactly the keys the portal publishes (tests/oidc_issuer.py),
so that nothing but the portal's own refusal stands between the token and the API.
"""

import json
import urllib.request

import jwt
import pytest
from django.db import connection
from django.utils.timezone import now

from tasks_app.lib import caches
from tasks_app.lib.crypto import plain
from tasks_app.models import Connector, Role, SigningKey, TrustedIssuer, TrustRule
from tasks_app.services import issuer as own
from tests.factories import make_served_task, make_team
from tests.factories import token_client as client_with
from tests.oidc_issuer import Issuer

pytestmark = pytest.mark.django_db

PORTAL = "https://ecr-portal.example.com"
STS = "sts.amazonaws.com"
ROLE = "arn:aws:iam::123456789012:role/ecr-from-portal"
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
DOCUMENTS = ["/.well-known/openid-configuration", "/.well-known/jwks.json"]


@pytest.fixture(autouse=True)
def _portal(settings):
    settings.ISSUER_URL = PORTAL
    settings.OIDC_ISSUERS = []
    caches.caches_clear()
    yield
    caches.caches_clear()


@pytest.fixture
def world(db):
    """A team whose task is served to CI, and its web-identity connector (whose tokens the
    portal signs with sub connector:<id>)."""
    team = make_team("Platform", alice=Role.ADMIN)
    connector = Connector(
        team=team,
        name="keyless",
        credentials="web_identity",
        principal_type="assumed_role",
        role_arn=ROLE,
    )
    connector.full_clean()
    connector.save()
    plan, job, task, _ = make_served_task(team, connector)
    return {"team": team, "plan": plan, "job": job, "task": task, "connector": connector}


def _aws_token(connector: Connector) -> str:
    """A token exactly as the portal makes one for sts:AssumeRoleWithWebIdentity."""
    return own.web_identity_source(connector)("ecrportal-alice")


def _trust_the_portal_past_clean(world, url: str) -> TrustRule:
    """The portal's own issuer written straight into the tables (no clean, no service),
    with a rule that pins exactly the connector's subject and AWS's audience."""
    (trusted,) = TrustedIssuer.objects.bulk_create([TrustedIssuer(issuer=url, name="Me")])
    return TrustRule.objects.create(
        team=world["team"],
        plan=world["plan"],
        issuer=trusted,
        audience=STS,
        conditions={"sub": world["connector"].web_identity_subject},
        name="the portal itself",
    )


@pytest.fixture
def portal_over_https(tmp_path, settings, client, monkeypatch):
    """The portal's issuer reachable over https as AWS reaches it: ECRPORTAL_ISSUER_URL points
    at a server on 127.0.0.1 that serves the discovery document naming it and the very JWKS
    the portal publishes. A token the portal signs verifies there."""
    server = Issuer(tmp_path)
    settings.OIDC_CA_BUNDLE = str(server.ca_bundle)
    settings.ISSUER_URL = server.url
    published = client.get("/.well-known/jwks.json").json()
    monkeypatch.setattr(server, "jwks", lambda: published)  # the portal's keys, as published
    yield server
    server.stop()


def _refusal(response) -> str:
    assert response.status_code == 401, response.content
    return response.json()["detail"]


# --- the public documents --------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # the live server's thread reads the keys
def test_the_jwks_served_over_http_holds_no_private_member_in_any_key(live_server):
    own.signing_key_ensure()
    own.signing_key_rotate(overlap=600)  # the next key is published before it signs
    with urllib.request.urlopen(f"{live_server.url}/.well-known/jwks.json") as answer:
        document = json.load(answer)
        assert answer.headers["Content-Type"] == "application/json"
    assert len(document["keys"]) == 2
    for key in document["keys"]:
        assert PRIVATE_MEMBERS.isdisjoint(key), sorted(key)
        assert set(key) == {"kty", "n", "e", "kid", "alg", "use"}
        assert jwt.PyJWK(key).key.__class__.__name__.endswith("RSAPublicKey")
    with urllib.request.urlopen(f"{live_server.url}/.well-known/openid-configuration") as answer:
        assert json.load(answer)["issuer"] == PORTAL


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_HOST": "evil.example"},
        {"HTTP_X_FORWARDED_HOST": "evil.example", "HTTP_X_FORWARDED_PROTO": "http"},
        {"HTTP_HOST": "evil.example:8443", "HTTP_X_FORWARDED_HOST": "evil.example"},
        {"HTTP_FORWARDED": "host=evil.example;proto=http", "HTTP_X_FORWARDED_PREFIX": "/evil"},
    ],
)
def test_the_documents_name_only_the_configured_issuer_whatever_host_the_request_claims(
    client, settings, headers
):
    settings.ALLOWED_HOSTS = ["*"]  # a permissive deployment: the headers reach the view
    settings.USE_X_FORWARDED_HOST = True
    discovery = client.get(DOCUMENTS[0], **headers)
    assert discovery.status_code == 200
    document = discovery.json()
    assert document["issuer"] == PORTAL
    assert document["jwks_uri"] == f"{PORTAL}/.well-known/jwks.json"
    assert "evil" not in discovery.content.decode()
    keys = client.get(DOCUMENTS[1], **headers)
    assert keys.status_code == 200
    assert "evil" not in keys.content.decode()


def test_a_host_the_portal_does_not_serve_gets_a_400_not_a_document(client):
    response = client.get(DOCUMENTS[0], HTTP_HOST="evil.example")
    assert response.status_code == 400
    assert b"jwks_uri" not in response.content
    assert b"evil.example" not in response.content


def test_the_documents_answer_get_only_and_a_refused_method_makes_no_key(client):
    for path in DOCUMENTS:
        for method in ("post", "put", "patch", "delete"):
            response = getattr(client, method)(path, data="{}", content_type="application/json")
            assert response.status_code == 405, (method, path)
            assert response["Allow"] == "GET"
    assert not SigningKey.objects.exists()  # nothing was made for a refused request


def test_the_documents_never_set_a_cookie_for_anyone(client, world):
    anonymous = [client.get(path) for path in DOCUMENTS]
    client.force_login(world["team"].members.get())
    client.get("/")  # a session with a CSRF token, as a browser would hold
    assert client.cookies  # the browser holds a session (and a CSRF cookie) now
    signed_in = [client.get(path) for path in DOCUMENTS]
    for response in anonymous + signed_in:
        assert response.status_code == 200
        assert not response.cookies, response.cookies.output()
        assert "Set-Cookie" not in response.headers
        assert response["Cache-Control"].startswith("public")


def test_the_private_keys_are_encrypted_in_the_database_column():
    own.signing_key_ensure()
    own.signing_key_rotate(overlap=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT kid, private_key FROM tasks_app_signingkey")
        rows = cursor.fetchall()
    assert len(rows) == 2
    for kid, stored in rows:
        pem = plain(SigningKey.objects.get(kid=kid).private_key)
        assert "PRIVATE KEY" in pem
        assert "PRIVATE KEY" not in stored
        body = "".join(pem.splitlines()[1:-1])
        assert body[:40] not in stored
        assert body[-40:] not in stored


# --- tokens the portal signed for AWS --------------------------------------------------------


def test_tokens_signed_for_aws_carry_sts_audience_five_minutes_and_a_fresh_jti(client, world):
    published = {k["kid"]: k for k in client.get(DOCUMENTS[1]).json()["keys"]}
    seen = set()
    for _ in range(3):
        raw = _aws_token(world["connector"])
        header = jwt.get_unverified_header(raw)
        assert (header["alg"], header["typ"]) == ("RS256", "JWT")
        claims = jwt.decode(
            raw,
            jwt.PyJWK(published[header["kid"]]).key,
            algorithms=["RS256"],
            audience=STS,
            issuer=PORTAL,
            options={"require": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"]},
        )
        assert claims["aud"] == STS
        assert claims["sub"] == f"connector:{world['connector'].pk}"
        assert claims["exp"] - claims["iat"] == 300
        assert claims["nbf"] == claims["iat"]
        assert abs(claims["iat"] - now().timestamp()) < 60
        seen.add(claims["jti"])
    assert len(seen) == 3


def test_a_token_signed_for_aws_is_not_an_id_token_for_the_portals_api(world):
    detail = _refusal(
        client_with(_aws_token(world["connector"])).get(
            f"/api/v1/tasks/{world['task'].id}/variables"
        )
    )
    assert "portal's own issuer" in detail or "not trusted" in detail


def test_a_token_signed_for_aws_is_refused_even_with_its_issuer_forced_into_the_table(
    world, portal_over_https
):
    """The issuer reachable, the key published, a rule naming the connector's subject and
    AWS's audience: only the portal's refusal of its own issuer stands in the way."""
    _trust_the_portal_past_clean(world, portal_over_https.url)
    task = world["task"]
    # As AWS would: the token verifies against the keys served at the issuer, over https.
    raw = _aws_token(world["connector"])
    served_keys = jwt.PyJWKSet.from_dict(portal_over_https.jwks())
    kid = jwt.get_unverified_header(raw)["kid"]
    jwt.decode(raw, served_keys[kid].key, algorithms=["RS256"], audience=STS)
    for path in [
        f"/api/v1/tasks/{task.id}/variables",
        f"/api/v1/tasks/{task.id}/env",
        f"/api/v1/plans/{world['plan'].key}/variables",
        "/api/v1/docker-config",
    ]:
        detail = _refusal(client_with(_aws_token(world["connector"])).get(path))
        assert "portal's own issuer" in detail, (path, detail)
    assert portal_over_https.jwks_requests == 0  # refused before anything was fetched


@pytest.mark.parametrize(
    ("configured", "row"),
    [
        (PORTAL, PORTAL),
        (PORTAL, "https://ECR-PORTAL.example.com"),
        (PORTAL, "HTTPS://Ecr-Portal.Example.Com/"),
        ("https://ECR-Portal.example.com", "https://ECR-Portal.example.com"),
        ("https://ECR-Portal.example.com/", "https://ecr-portal.example.com"),
    ],
)
def test_the_portals_own_issuer_forced_into_the_table_in_any_letter_case_admits_nothing(
    world, settings, monkeypatch, configured, row
):
    fetched = []

    def no_network(url, *args, **kwargs):
        fetched.append(url)
        raise AssertionError(f"the portal fetched {url} to verify its own token")

    monkeypatch.setattr("requests.get", no_network)
    monkeypatch.setattr("urllib.request.urlopen", no_network)
    settings.ISSUER_URL = configured
    _trust_the_portal_past_clean(world, row)
    raw = _aws_token(world["connector"])
    assert jwt.decode(raw, options={"verify_signature": False})["iss"] == configured
    detail = _refusal(client_with(raw).get(f"/api/v1/tasks/{world['task'].id}/variables"))
    assert "portal's own issuer" in detail or "not trusted" in detail
    assert fetched == []


def test_a_token_signed_for_aws_relabelled_with_a_trusted_ci_issuer_is_refused(
    world, tmp_path, settings
):
    """The holder rewrites iss (and aud) to those of a CI issuer a rule trusts: the
    portal's signature does not survive, and the CI issuer has no key of the portal's."""
    ci = Issuer(tmp_path)
    try:
        settings.OIDC_CA_BUNDLE = str(ci.ca_bundle)
        trusted = TrustedIssuer.objects.create(issuer=ci.url, name="CI")
        subject = world["connector"].web_identity_subject
        TrustRule.objects.create(
            team=world["team"],
            plan=world["plan"],
            issuer=trusted,
            audience=STS,
            conditions={"sub": subject},
            name="ci",
        )
        header, payload, signature = _aws_token(world["connector"]).split(".")
        claims = json.loads(jwt.utils.base64url_decode(payload))
        claims["iss"] = ci.url
        relabelled = jwt.utils.base64url_encode(json.dumps(claims).encode()).decode()
        raw = f"{header}.{relabelled}.{signature}"
        path = f"/api/v1/tasks/{world['task'].id}/variables"
        detail = _refusal(client_with(raw).get(path))
        assert "has no key" in detail or "Signature" in detail
        # The same claims really signed by the CI issuer do pass: the rule is a live one.
        assert client_with(ci.token(sub=subject, aud=STS)).get(path).status_code == 200
    finally:
        ci.stop()
