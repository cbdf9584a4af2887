"""Trusted CI issuers (portal administrators) and a plan's trust rules (its admins)."""

import pytest

from tasks_app.models import AuditEvent, Job, Plan, Role, TrustedIssuer, TrustRule
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

GITHUB = "https://token.actions.githubusercontent.com"


@pytest.fixture
def root(db):
    return make_user("root", is_superuser=True, is_staff=True)


@pytest.fixture
def plan(db):
    team = make_team("Platform", ada=Role.ADMIN, eve=Role.EDITOR)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    Job.objects.create(plan=plan, key="BUILD", name="Build")
    return plan


def test_a_superuser_trusts_and_stops_trusting_an_issuer(client, root, settings):
    settings.OIDC_ISSUERS = []
    client.force_login(root)
    response = client.post("/oidc-issuers/", {"name": "GitHub", "issuer": GITHUB + "/"})
    assert response["Location"] == "/oidc-issuers/"
    trusted = TrustedIssuer.objects.get()
    assert trusted.issuer == GITHUB  # the trailing slash is not part of iss
    client.post(f"/oidc-issuers/{trusted.id}/delete/")
    assert not TrustedIssuer.objects.exists()
    actions = list(AuditEvent.objects.order_by("created").values_list("action", flat=True))
    assert actions == ["oidc_issuer.registered", "oidc_issuer.removed"]


@pytest.mark.parametrize(
    ("issuer", "pinned", "message"),
    [
        ("http://gitlab.example.com", [], "Enter the issuer's https URL"),
        ("https://gitlab.example.com", [GITHUB], "ECRPORTAL_OIDC_ISSUERS pins the issuers"),
    ],
)
def test_it_refuses_what_cannot_be_trusted(client, root, settings, issuer, pinned, message):
    settings.OIDC_ISSUERS = pinned
    client.force_login(root)
    response = client.post("/oidc-issuers/", {"name": "X", "issuer": issuer})
    assert response.status_code == 400
    assert response.context["form"].errors["issuer"][0].startswith(message)
    assert not TrustedIssuer.objects.exists()


def test_only_superusers_manage_issuers(client, plan):
    client.force_login(plan.team.members.get(username="ada"))
    assert client.get("/oidc-issuers/").status_code == 403
    assert client.post("/oidc-issuers/", {"name": "X", "issuer": GITHUB}).status_code == 403


def test_a_team_admin_adds_a_rule_and_editors_only_see_them(client, plan):
    issuer = TrustedIssuer.objects.create(issuer=GITHUB, name="GitHub")
    job = plan.jobs.get()
    client.force_login(plan.team.members.get(username="eve"))
    assert client.get(f"/plans/{plan.id}/trust-rules/").status_code == 200
    body = {
        "name": "main",
        "issuer": issuer.id,
        "job": job.id,
        "audience": "https://ecr-portal.example.com",
        "conditions": "repository=acme/web\nref = refs/heads/*\n",
    }
    assert client.post(f"/plans/{plan.id}/trust-rules/", body).status_code == 403

    client.force_login(plan.team.members.get(username="ada"))
    response = client.post(f"/plans/{plan.id}/trust-rules/", body)
    assert response["Location"] == f"/plans/{plan.id}/trust-rules/"
    rule = TrustRule.objects.get()
    assert (rule.team, rule.job) == (plan.team, job)
    assert rule.conditions == {"repository": "acme/web", "ref": "refs/heads/*"}
    assert AuditEvent.objects.filter(action="trust_rule.created", team=plan.team).exists()

    client.post(f"/plans/{plan.id}/trust-rules/{rule.id}/delete/")
    assert not TrustRule.objects.exists()


@pytest.mark.parametrize(
    ("conditions", "message"),
    [("", "This field is required."), ("repository", "Line 1 is not claim=pattern")],
)
def test_a_rule_needs_conditions(client, plan, conditions, message):
    issuer = TrustedIssuer.objects.create(issuer=GITHUB, name="GitHub")
    client.force_login(plan.team.members.get(username="ada"))
    response = client.post(
        f"/plans/{plan.id}/trust-rules/",
        {"name": "x", "issuer": issuer.id, "audience": "a", "conditions": conditions},
    )
    assert response.status_code == 400
    assert response.context["form"].errors["conditions"][0].startswith(message)
    assert not TrustRule.objects.exists()


def test_another_teams_job_cannot_be_chosen(client, plan):
    issuer = TrustedIssuer.objects.create(issuer=GITHUB, name="GitHub")
    other = Plan.objects.create(team=make_team("Other"), key="OTHER", name="Other")
    foreign = Job.objects.create(plan=other, key="JOB", name="Job")
    client.force_login(plan.team.members.get(username="ada"))
    response = client.post(
        f"/plans/{plan.id}/trust-rules/",
        {
            "name": "x",
            "issuer": issuer.id,
            "job": foreign.id,
            "audience": "a",
            "conditions": "sub=*",
        },
    )
    assert response.status_code == 400
    assert "job" in response.context["form"].errors
    assert not TrustRule.objects.exists()
