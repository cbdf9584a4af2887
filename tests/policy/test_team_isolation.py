"""A member of team A gets 404 for every object of team B, whatever the URL.

Every routed URL that takes an object ID is tried with team B's objects. When a
later feature adds a URL parameter, add how to find team B's object for it to
`team_b_objects`; the test fails until then.
"""

import re
import uuid

import pytest
from django.urls import URLPattern, get_resolver

from tasks_app.models import (
    ApiToken,
    AuditEvent,
    Connector,
    Invitation,
    Job,
    Membership,
    Plan,
    Role,
    TaskConfig,
    TrustRule,
    Variable,
)
from tests.factories import make_connector, make_user

pytestmark = pytest.mark.django_db


def team_b_objects(team_b) -> dict[str, str]:
    """Team B's object for each URL parameter name."""
    connector = make_connector(team_b, name="team-b-connector")
    plan = Plan.objects.create(team=team_b, key="BEE-PLAN", name="B's plan")
    job = Job.objects.create(plan=plan, key="JOB1", name="Build")
    task = TaskConfig.objects.create(job=job, region="eu-west-1", connector=connector)
    variable = Variable.objects.create(team=team_b, plan=plan, key="aws.region", value="eu-west-1")
    token = ApiToken.objects.create(
        team=team_b, plan=plan, name="b-ci", token_hash="0" * 64, hint="ecrp_b"
    )
    from tasks_app.models import TrustedIssuer, TrustRule

    rule = TrustRule.objects.create(
        team=team_b,
        plan=plan,
        issuer=TrustedIssuer.objects.create(issuer="https://ci.example.com", name="CI"),
        audience="a",
        conditions={"sub": "x"},
        name="r",
    )
    invitation = Invitation.objects.create(
        team=team_b, email="b@example.com", expires_at="2999-01-01T00:00:00Z"
    )
    return {
        "invitation_id": str(invitation.id),
        "rule_id": str(rule.id),
        "team_id": str(team_b.id),
        "membership_id": str(team_b.memberships.first().id),
        "connector_id": str(connector.id),
        "plan_id": str(plan.id),
        "job_id": str(job.id),
        "task_id": str(task.id),
        "variable_id": str(variable.id),
        "token_id": str(token.id),
        "plan_key": plan.key,
    }


# The API's collections name their object "pk" (or a plan "key") in regex patterns.
REGEX_GROUP = re.compile(r"\(\?P<(\w+)>[^)]*\)")
COLLECTION_OBJECTS = {
    "connectors": "connector_id",
    "jobs": "job_id",
    "tasks": "task_id",
    "variables": "variable_id",
    "plans": "plan_key",
}


def _route(entry) -> str:
    """The pattern as a route with <name> placeholders."""
    route = str(entry.pattern)
    if not REGEX_GROUP.search(route):
        return route
    route = route.removeprefix("^").removesuffix("$")
    collection = route.split("/")[0]
    return REGEX_GROUP.sub(
        lambda m: f"<{COLLECTION_OBJECTS[collection] if m[1] in ('pk', 'key') else m[1]}>",
        route,
    )


# Routes whose parameter is no team's object, and where their access is tested.
NOT_TEAM_OBJECTS = {
    "invitations/<str:code>/",  # a signed bearer link (tests/services/test_invitations.py)
    "users/<int:user_id>/<slug:action>/",  # superusers only (tests/services/test_users.py)
    "downloads/<str:name>",  # public files (tests/api/test_credential_helper.py)
    # superusers only (tests/views/test_workload_pages.py)
    "oidc-issuers/<uuid:issuer_id>/delete/",
    "users/trust-rules/<uuid:rule_id>/enable/",  # superusers only (test_attack_users.py)
    # superusers only, refused before the team is looked up (tests/views/test_confirmations.py)
    "host-credentials/<uuid:team_id>/withdraw/",
}


def _object_urls(patterns, prefix=""):
    for entry in patterns:
        route = _route(entry)
        if prefix + route in NOT_TEAM_OBJECTS:
            continue
        if isinstance(entry, URLPattern):
            params = re.findall(r"<(?:\w+:)?(\w+)>", route)
            if params:
                yield prefix + route, params
        elif not route.startswith("admin/"):  # the admin is for superusers only
            yield from _object_urls(entry.url_patterns, prefix + route)


def test_team_a_members_get_404_for_every_team_b_url(client, alice, team_b):
    objects = team_b_objects(team_b)
    memberships_before = list(Membership.objects.filter(team=team_b).values("user", "role"))
    client.force_login(alice)

    tried = 0
    for route, params in _object_urls(get_resolver().url_patterns):
        missing = set(params) - objects.keys()
        assert not missing, f"{route}: add team B's object for {missing} to team_b_objects"
        path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: objects[m.group(1)], route)
        nowhere = "/" + re.sub(
            r"<(?:\w+:)?(\w+)>",
            lambda m: "ZZ-NOWHERE" if m[1] == "plan_key" else str(uuid.uuid4()),
            route,
        )
        for method in ("get", "post"):
            send = getattr(client, method)
            response = send(path, {"role": Role.ADMIN, "user": "alice"})
            if response.status_code == 405:
                # Refused for the method alone, exactly as for an ID that exists nowhere.
                assert send(nowhere).status_code == 405, f"{method.upper()} {path}"
            else:
                assert response.status_code == 404, f"{method.upper()} {path}"
            tried += 1

    assert tried >= 10
    # Nothing about team B changed, and nothing was done in its name.
    assert list(Membership.objects.filter(team=team_b).values("user", "role")) == (
        memberships_before
    )
    assert not AuditEvent.objects.filter(team=team_b).exists()
    assert Connector.objects.get(team=team_b).name == "team-b-connector"
    assert TaskConfig.objects.get(job__plan__team=team_b).runs.count() == 0
    assert Variable.objects.get(team=team_b).value == "eu-west-1"
    assert ApiToken.objects.get(team=team_b).revoked_at is None
    assert Invitation.objects.get(team=team_b).state == "pending"
    assert TrustRule.objects.filter(team=team_b).count() == 1
    # Query-string forms of team B's objects.
    for query in (f"team={team_b.id}", f"plan={objects['plan_id']}", "team=nonsense", "plan="):
        assert client.get(f"/variables/new/?{query}").status_code == 404, query
        assert (
            client.post(f"/variables/new/?{query}", {"key": "x", "value": "y"}).status_code == 404
        )


def test_a_membership_id_of_team_b_is_404_under_team_a(client, alice, team_a, team_b):
    client.force_login(alice)
    other = team_b.memberships.first()
    response = client.post(f"/teams/{team_a.id}/members/{other.id}/remove/")
    assert response.status_code == 404
    assert Membership.objects.filter(id=other.id).exists()


def test_team_lists_show_only_own_teams(client, alice, team_b):
    client.force_login(alice)
    body = client.get("/teams/").content.decode()
    assert "Team A" in body
    assert "Team B" not in body
    assert "Team B" not in client.get("/").content.decode()


def test_superusers_see_every_team(client, team_a, team_b):
    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(root)
    body = client.get("/teams/").content.decode()
    assert "Team A" in body
    assert "Team B" in body
    assert client.get(f"/teams/{team_b.id}/").status_code == 200
