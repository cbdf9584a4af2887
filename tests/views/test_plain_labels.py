"""Labels say what a thing is, in the portal's own words (issue 24, item 5): a task's
credentials source, a connector's principal, a token's expiry, how to save a task whose
variables do not resolve yet (tests/policy/test_task_references.py has the latter's
messages)."""

import re
from datetime import timedelta

import pytest
from django.template import Context, Template
from django.utils.timezone import now

from tasks_app.models import Connector, Job, Plan, Role, TaskConfig
from tasks_app.templatetags.portal import until
from tests.factories import PASSWORD, give_credential, make_connector, make_team

pytestmark = pytest.mark.django_db

WEB_IDENTITY_PRINCIPAL = "Assume a role with the portal's ID token (sts:AssumeRoleWithWebIdentity)"


@pytest.fixture
def team(db):
    return make_team("Platform", alice=Role.ADMIN)


def _web_identity(team, settings):
    settings.ISSUER_URL = "https://ecr-portal.example.com"
    connector = Connector(
        team=team,
        name="keyless",
        credentials="web_identity",
        principal_type="assumed_role",
        role_arn="arn:aws:iam::123456789012:role/ecr-from-portal",
    )
    connector.full_clean()
    connector.save()
    return connector


def test_a_countdown_says_before_and_after_its_moment():
    at = now()
    assert until(at + timedelta(hours=3, minutes=5, seconds=30)) == "in 3 h 05 min"
    assert until(at - timedelta(seconds=50)) == "50 s ago"
    assert until(None) == "—"


def test_an_expiry_says_expires_or_expired_never_expires_in_ago():
    at = now()
    assert until(at + timedelta(minutes=4, seconds=9.5), "expiry") == "expires in 4 min 09 s"
    assert until(at - timedelta(seconds=50), "expiry") == "expired 50 s ago"


def test_the_countdown_tag_gives_the_script_the_same_words():
    moment = now() - timedelta(minutes=2)
    html = Template('{% load portal %}{% countdown moment "expiry" %}').render(
        Context({"moment": moment})
    )
    assert 'data-countdown data-before="expires " data-after="expired "' in html
    assert re.search(r">expired 2 min 0\d s ago</time>", html)
    assert f'datetime="{moment.isoformat()}"' in html
    assert Template("{% load portal %}{% countdown None %}").render(Context()) == "—"


def test_the_dashboard_names_the_column_token_and_says_expired(client, team):
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    task = TaskConfig.objects.create(
        job=Job.objects.create(plan=plan, key="BUILD", name="Build"),
        region="eu-west-1",
        connector=make_connector(team),
        description="the task",
    )
    give_credential(task, expires_in=timedelta(seconds=-50))
    client.login(username="alice", password=PASSWORD)

    page = client.get("/").content.decode()
    assert '<th scope="col">Token</th>' in page
    assert "Expires in" not in page
    row = next(row for row in page.split("<tr") if ">the task</a>" in row)
    assert re.search(r">expired \d+ s ago</time>", row)


def test_a_task_s_credentials_source_is_a_connector_not_identity_federation(client, team):
    assert TaskConfig.Source.CONNECTOR.label == (
        "A connector (its access key, role or web identity)"
    )
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(job=job, region="eu-west-1", connector=make_connector(team))
    client.login(username="alice", password=PASSWORD)

    for url in (f"/tasks/{task.id}/", f"/jobs/{job.id}/tasks/new/"):
        page = client.get(url).content.decode()
        assert "Identity Federation" not in page
        assert "A connector (its access key, role or web identity)" in page


def test_a_web_identity_connector_is_listed_with_the_role_it_assumes_by_id_token(
    client, team, settings
):
    plain = make_connector(
        team, principal_type="assumed_role", role_arn="arn:aws:iam::123456789012:role/ecr-push"
    )
    keyless = _web_identity(team, settings)
    assert plain.principal_display() == "Assume a role (sts:AssumeRole)"
    assert keyless.principal_display() == WEB_IDENTITY_PRINCIPAL
    client.login(username="alice", password=PASSWORD)

    listing = client.get("/connectors/").content.decode()
    row = next(row for row in listing.split("<tr") if ">keyless</a>" in row)
    assert WEB_IDENTITY_PRINCIPAL.replace("'", "&#x27;") in row
    assert "(sts:AssumeRole)" not in row
    page = client.get(f"/connectors/{keyless.id}/").content.decode()
    assert WEB_IDENTITY_PRINCIPAL.replace("'", "&#x27;") in page
