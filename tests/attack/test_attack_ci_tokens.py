"""The CI ID-token surface, attacked (issue 22, items 2, 3, 4, 13, 14).

The attacker: anyone who can run a job at a trusted CI issuer (on GitHub, anyone at all), or
a team admin of another team who writes trust rules, or anyone on the network who sends a
crafted JWT. What they control: every header and claim of a token they sign with the
issuer's real keys (through their own jobs), and of tokens they forge; the kids and issuer
URLs they name (public); the rules of their own team. The real issuer is an https server
on 127.0.0.1 (tests/oidc_issuer.py); every request goes through the API as a CI job's would.
"""

import json
import threading
import time

import jwt
import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from tasks_app.identity.actor import SYSTEM, Actor
from tasks_app.models import AuditEvent, Job, Plan, TaskConfig, TrustedIssuer, TrustRule
from tasks_app.services.workload import (
    FAILURE_SECONDS,
    issuer_register,
    trust_rule_create,
)
from tests.factories import give_credential, make_connector, make_served_task, make_team
from tests.factories import token_client as client_with
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db

AUDIENCE = "https://ecr-portal.example.com"


@pytest.fixture
def trusted(issuer):
    return TrustedIssuer.objects.create(issuer=issuer.url, name="Test CI")


def _rule(team, plan, trusted, conditions, *, job=None, name="rule"):
    return TrustRule.objects.create(
        team=team,
        plan=plan,
        job=job,
        issuer=trusted,
        audience=AUDIENCE,
        conditions=conditions,
        name=name,
    )


@pytest.fixture
def two_teams(trusted):
    """Team A trusts acme/web for its plan; team B, later, trusts acme/* for one of its
    jobs (job rules were tried first, across all teams: B's captured A's tokens)."""
    team_a = make_team("Team A")
    plan_a, _, task_a, _ = make_served_task(team_a, make_connector(team_a))
    _rule(team_a, plan_a, trusted, {"repository": "acme/web"}, name="a-web")
    team_b = make_team("Team B")
    plan_b = Plan.objects.create(team=team_b, key="B-PLAN", name="B")
    job_b = Job.objects.create(plan=plan_b, key="BJOB", name="B job")
    task_b = TaskConfig.objects.create(
        job=job_b,
        region="eu-west-1",
        connector=make_connector(team_b, name="b-ecr"),
        scope="result",
        namespace="b",
    )
    give_credential(task_b, password="team-b-password")
    rule_b = _rule(team_b, plan_b, trusted, {"repository": "acme/*"}, job=job_b, name="b-all-acme")
    return {"task_a": task_a, "plan_a": plan_a, "task_b": task_b, "rule_b": rule_b}


# --- item 2: one team's rule never captures another team's tokens ---------------------------


def test_another_teams_broader_rule_does_not_capture_a_tokens_own_task(issuer, two_teams):
    response = client_with(issuer.token()).get(f"/api/v1/tasks/{two_teams['task_a'].id}/variables")
    assert response.status_code == 200, response.content
    event = AuditEvent.objects.get(action="token.oidc_used")
    assert event.team.name == "Team A"
    assert event.changes["rule"] == "a-web"


def test_another_teams_broader_rule_does_not_capture_a_tokens_own_plan(issuer, two_teams):
    response = client_with(issuer.token()).get("/api/v1/plans/WEB-BUILD/variables")
    assert response.status_code == 200, response.content
    assert AuditEvent.objects.get(action="token.oidc_used").team.name == "Team A"


def test_the_broader_rule_binds_the_token_only_where_it_is_addressed(issuer, two_teams):
    response = client_with(issuer.token()).get(f"/api/v1/tasks/{two_teams['task_b'].id}/variables")
    assert response.status_code == 200  # team B chose to trust acme/*, for its own plan
    assert AuditEvent.objects.get(action="token.oidc_used").team.name == "Team B"


def test_a_token_whose_rules_bind_it_to_two_plans_is_refused_where_nothing_is_addressed(
    issuer, two_teams
):
    response = client_with(issuer.token()).get("/api/v1/docker-config")
    assert response.status_code == 401
    assert "trust rules of several plans or jobs match this token" in response.json()["detail"]
    assert "B-PLAN" not in response.json()["detail"]  # another team's plans are not named
    assert not AuditEvent.objects.filter(action="token.oidc_used").exists()


def test_a_token_addressing_a_plan_no_matching_rule_belongs_to_is_refused(issuer, two_teams):
    other = Plan.objects.create(team=two_teams["plan_a"].team, key="OTHER-PLAN", name="O")
    response = client_with(issuer.token()).get(f"/api/v1/plans/{other.key}/variables")
    assert response.status_code == 401
    response = client_with(issuer.token()).get(
        "/api/v1/tasks/00000000-0000-0000-0000-000000000000/variables"
    )
    assert response.status_code == 401
    assert not AuditEvent.objects.filter(action="token.oidc_used").exists()


def test_rules_of_two_jobs_of_one_plan_bind_by_the_task_addressed(issuer, trusted):
    team = make_team("Platform")
    plan, build, task, _ = make_served_task(team, make_connector(team))
    deploy = Job.objects.create(plan=plan, key="DEPLOY", name="Deploy")
    _rule(team, plan, trusted, {"repository": "acme/web"}, job=deploy, name="deploy")
    _rule(team, plan, trusted, {"repository": "acme/web"}, job=build, name="build")
    response = client_with(issuer.token()).get(f"/api/v1/tasks/{task.id}/variables")
    assert response.status_code == 200
    assert AuditEvent.objects.get(action="token.oidc_used").changes["rule"] == "build"
    assert client_with(issuer.token()).get("/api/v1/docker-config").status_code == 401
    # A plan's address with its job named (the README's GitHub Actions example) binds too.
    response = client_with(issuer.token()).get("/api/v1/plans/WEB-BUILD/docker-config?job=BUILD")
    assert response.status_code == 200, response.content
    assert AuditEvent.objects.filter(action="token.oidc_used").last().changes["rule"] == "build"
    response = client_with(issuer.token()).get("/api/v1/plans/WEB-BUILD/docker-config")
    assert response.status_code == 401  # which job's token? refused, not guessed


# --- item 3: rules that match every job of the issuer are refused -------------------------


@pytest.mark.parametrize(
    "conditions",
    [
        {"sub": "*"},
        {"repository": "*"},
        {"sub": "?*"},
        {"sub": "**"},
        {"sub": "repo:*"},
        {"repository": "acme*"},  # acme-evil/web matches too
        {"repository": "*/web"},
        {"repository_owner": "acme*"},
        {"ref": "refs/heads/main"},  # pins no owner at all
        {"sub": "repo:/*"},
        {"repository": " "},
        {"repository": 7},
        {"sub": "a\x00b"},
    ],
)
def test_a_rule_that_pins_no_owner_is_refused_with_the_reason(trusted, conditions):
    team = make_team("Platform", ada="admin")
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    rule = TrustRule(
        team=team, plan=plan, issuer=trusted, audience=AUDIENCE, conditions=conditions, name="r"
    )
    with pytest.raises(ValidationError) as refused:
        trust_rule_create(rule=rule, actor=Actor(user=team.members.get()))
    assert "conditions" in refused.value.message_dict
    assert not TrustRule.objects.exists()


@pytest.mark.parametrize(
    "conditions",
    [
        {"repository": "acme/web"},
        {"repository": "acme/*"},
        {"sub": "repo:acme/*"},
        {"sub": "repo:acme/web:ref:refs/heads/main"},
        {"project_path": "group/sub/*", "ref": "*"},
        {"repository_owner": "acme"},
    ],
)
def test_a_rule_that_pins_an_owner_is_saved(trusted, conditions):
    team = make_team("Platform", ada="admin")
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    rule = TrustRule(
        team=team, plan=plan, issuer=trusted, audience=AUDIENCE, conditions=conditions, name="r"
    )
    trust_rule_create(rule=rule, actor=Actor(user=team.members.get()))
    assert TrustRule.objects.count() == 1


def test_the_form_says_why_a_wildcard_rule_is_refused(client, trusted):
    team = make_team("Platform", ada="admin")
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    client.force_login(team.members.get())
    response = client.post(
        f"/plans/{plan.id}/trust-rules/",
        {"name": "all", "issuer": trusted.id, "audience": AUDIENCE, "conditions": "sub=*"},
    )
    assert response.status_code == 400
    assert "Pin an owner" in response.content.decode()
    assert not TrustRule.objects.exists()


def test_a_wildcard_rule_saved_before_the_check_admits_nothing(issuer, trusted):
    team = make_team("Platform")
    plan, _, task, _ = make_served_task(team, make_connector(team))
    _rule(team, plan, trusted, {"sub": "*"})  # as an older portal could have saved it
    response = client_with(issuer.token()).get(f"/api/v1/tasks/{task.id}/variables")
    assert response.status_code == 401
    assert "no trust rule of issuer" in response.json()["detail"]


# --- item 4: crafted tokens answer 401, never 500 -------------------------------------------


@pytest.fixture
def world(issuer, trusted):
    team = make_team("Platform")
    plan, job, task, _ = make_served_task(team, make_connector(team))
    _rule(team, plan, trusted, {"repository": "acme/web"}, job=job, name="web")
    return {"task": task}


def _forged(issuer, header: dict, claims: dict) -> str:
    """A token whose header and claims say whatever the attacker likes (values PyJWT would
    not encode), signed with the issuer's RSA key."""

    def part(data) -> str:
        return jwt.utils.base64url_encode(json.dumps(data).encode()).decode()

    signing_input = f"{part({'alg': 'RS256', **header})}.{part(claims)}"
    signature = jwt.algorithms.RSAAlgorithm(jwt.algorithms.RSAAlgorithm.SHA256).sign(
        signing_input.encode(), issuer.rsa
    )
    return f"{signing_input}.{jwt.utils.base64url_encode(signature).decode()}"


def _swap_alg(raw: str, alg: str) -> str:
    header, payload, signature = raw.split(".")
    decoded = json.loads(jwt.utils.base64url_decode(header))
    decoded["alg"] = alg
    return ".".join(
        [jwt.utils.base64url_encode(json.dumps(decoded).encode()).decode(), payload, signature]
    )


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        # An RSA key's kid with ES256, and an EC key's with RS256: the key type must fit.
        (lambda i: _swap_alg(i.token(algorithm="RS256"), "ES256"), "is for RS256"),
        (lambda i: _swap_alg(i.token(algorithm="ES256"), "RS256"), "is for ES256"),
        (lambda i: i.token(algorithm="ES256", kid="rsa-1"), "is for RS256"),
        (lambda i: i.token(algorithm="RS256", kid="ec-1"), "is for ES256"),
        (lambda i: i.token(iss="https://a\u0000"), "issuer (iss) is not a valid one"),
        (lambda i: i.token(iss="https://a\n.example.com"), "is not a valid one"),
        (lambda i: i.token(iss="https://" + "a" * 600), "is not a valid one"),
        (lambda i: _forged(i, {"kid": "rsa-1"}, i.claims(iss=["x"])), "names no issuer"),
        (lambda i: _forged(i, {"kid": "rsa-1"}, i.claims(iss=7)), "names no issuer"),
        (lambda i: i.token(kid="rsa-1\u0000"), "key (kid) is not a valid one"),
        (lambda i: _forged(i, {"kid": ["rsa-1"]}, i.claims()), "names no key"),
        (lambda i: _forged(i, {"kid": {"a": 1}}, i.claims()), "names no key"),
        (lambda i: i.token(exp=10**12), "expires more than 31 days from now"),
        (lambda i: i.token(exp=10**30), "expires more than 31 days from now"),
        (lambda i: i.token(exp=1e300), "expires more than 31 days from now"),
        (lambda i: i.token(exp="soon"), "Expiration Time claim (exp) must be an integer"),
        (lambda i: i.token(iat=10**30), "not yet valid (iat)"),
        (lambda i: i.token(nbf=-(10**30)), ""),
        (lambda i: i.token(sub=["a"], repository="acme/web"), ""),
        (lambda i: i.token(aud=[1, 2]), ""),
        (lambda i: i.token(jti={"a": 1}), ""),
    ],
)
def test_crafted_tokens_are_refused_with_401_and_no_traceback(issuer, world, caplog, make, reason):
    raw = make(issuer)
    response = client_with(raw).get(f"/api/v1/tasks/{world['task'].id}/variables")
    if response.status_code == 200:
        # Odd but well signed claims (a list as sub, a dict as jti) may pass: never a 500.
        assert reason == ""
        return
    assert response.status_code == 401, response.content
    assert reason in response.json()["detail"]
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]


def test_a_nul_in_the_issuer_is_refused_before_the_database_sees_it(issuer, world):
    """PostgreSQL refuses NUL in text (DataError, a 500 before the fix)."""
    raw = issuer.token(iss="https://a\u0000.example.com")
    response = client_with(raw).get(f"/api/v1/tasks/{world['task'].id}/variables")
    assert response.status_code == 401


# --- item 13: a failing JWKS is fetched by one request, and remembered ---------------------


def test_a_failing_jwks_is_not_fetched_again_by_every_request(issuer, world):
    issuer.jwks_fails = True
    for _ in range(5):
        response = client_with(issuer.token()).get(f"/api/v1/tasks/{world['task'].id}/variables")
        assert response.status_code == 401
        assert f"tries again in {FAILURE_SECONDS} s" in response.json()["detail"]
    assert issuer.jwks_requests == 1


@pytest.mark.django_db(transaction=True)  # the requests run in threads of their own
def test_requests_waiting_on_a_failing_fetch_do_not_fetch_again(issuer, world):
    issuer.jwks_fails = True
    issuer.jwks_delay = threading.Event()  # the fetch hangs until released
    answers = []

    def call():
        raw = issuer.token()
        try:
            answers.append(
                client_with(raw).get(f"/api/v1/tasks/{world['task'].id}/variables").status_code
            )
        finally:
            connection.close()  # this thread's own, else the test database stays in use

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    wait_for(lambda: issuer.jwks_requests >= 1, timeout=30, interval=0.01, what="a fetch")
    issuer.jwks_delay.set()
    for thread in threads:
        thread.join(30)
    assert answers == [401] * 4
    assert issuer.jwks_requests == 1


def test_after_the_failure_is_forgotten_the_keys_are_fetched_again(issuer, world, monkeypatch):
    issuer.jwks_fails = True
    path = f"/api/v1/tasks/{world['task'].id}/variables"
    assert client_with(issuer.token()).get(path).status_code == 401
    issuer.jwks_fails = False
    assert client_with(issuer.token()).get(path).status_code == 401  # still remembered
    assert issuer.jwks_requests == 1
    clock = time.monotonic() + FAILURE_SECONDS + 1
    monkeypatch.setattr(time, "monotonic", lambda: clock)  # every cache's clock
    assert client_with(issuer.token()).get(path).status_code == 200


# --- item 14: the portal's own issuer is never trusted ------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://ecr-portal.example.com",
        "https://ecr-portal.example.com/",
        "https://ECR-PORTAL.example.com",
        "HTTPS://ecr-portal.example.com",
    ],
)
def test_the_portals_own_issuer_cannot_be_registered(settings, db, url):
    settings.ISSUER_URL = "https://ecr-portal.example.com"
    with pytest.raises(ValidationError) as refused:
        issuer_register(issuer=url, name="Self", actor=SYSTEM)
    assert "portal's own issuer" in str(refused.value)
    trusted = TrustedIssuer(issuer=url, name="Self")
    with pytest.raises(ValidationError):
        trusted.full_clean()  # the admin's form runs the same model rule


def test_the_portals_own_issuer_is_refused_in_the_admin(client, settings, db):
    from django.contrib.auth import get_user_model

    settings.ISSUER_URL = "https://ecr-portal.example.com"
    root = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    client.force_login(root)
    response = client.post(
        "/admin/tasks_app/trustedissuer/add/",
        {"issuer": "https://ecr-portal.example.com", "name": "Self"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "portal&#x27;s own issuer" in response.content.decode()
    assert not TrustedIssuer.objects.exists()


def test_tokens_of_the_portals_own_issuer_are_refused_even_if_it_is_in_the_table(
    settings, issuer, world
):
    """Inserted past every form (an old row, a database edit): verification refuses too."""
    settings.ISSUER_URL = issuer.url.upper().replace("HTTPS", "https")
    response = client_with(issuer.token()).get(f"/api/v1/tasks/{world['task'].id}/variables")
    assert response.status_code == 401
    assert "portal's own issuer" in response.json()["detail"]
    assert issuer.jwks_requests == 0  # refused before anything is fetched
