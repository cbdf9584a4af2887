"""API v1 configuration endpoints: the forms' rules, write-only secrets, team isolation."""

import json

import pytest
from rest_framework.test import APIClient

from tasks_app.models import AuditEvent, Connector, Job, Plan, Role, TaskConfig, Variable
from tests.factories import SECRET, api_token, make_connector, make_team, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    team = make_team("Platform", ada=Role.ADMIN, alice=Role.EDITOR, vic=Role.VIEWER)
    other = make_team("Other", oscar=Role.ADMIN)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    return {"team": team, "other": other, "plan": plan, "job": job}


def _as(world, username):
    client = APIClient()
    team = world["team"] if username != "oscar" else world["other"]
    client.force_login(team.members.get(username=username))
    return client


CONNECTOR = {
    "name": "push",
    "partition": "aws",
    "credentials": "access_key",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": SECRET,
    "principal_type": "assumed_role",
    "role_arn": "arn:aws:iam::123456789012:role/ecr-push",
}


def test_a_team_admin_creates_a_connector_whose_secret_is_write_only(world):
    client = _as(world, "ada")
    response = client.post(
        "/api/v1/connectors", {**CONNECTOR, "team": str(world["team"].id)}, format="json"
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "secret_access_key" not in body
    assert SECRET not in response.content.decode()
    connector = Connector.objects.get(id=body["id"])
    assert connector.secret_access_key.reveal() == SECRET
    assert AuditEvent.objects.filter(action="connector.created").exists()

    # An update without the secret keeps it.
    response = client.patch(
        f"/api/v1/connectors/{connector.id}", {"external_id": "ext-42"}, format="json"
    )
    assert response.status_code == 200, response.json()
    connector.refresh_from_db()
    assert (connector.external_id, connector.secret_access_key.reveal()) == ("ext-42", SECRET)


def test_connector_input_gets_the_forms_messages(world):
    client = _as(world, "ada")
    response = client.post(
        "/api/v1/connectors",
        {
            **CONNECTOR,
            "team": str(world["team"].id),
            "access_key_id": "AKIA1",
            "session_duration": 5,
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert body["detail"]["access_key_id"][0].startswith("Enter an access key ID: 20 capital")
    assert body["detail"]["session_duration"][0].startswith("Enter a duration from 900 to 43200")
    assert not Connector.objects.exists()


def test_roles_and_teams_bound_what_the_api_does(world):
    connector = make_connector(world["team"])
    assert (
        _as(world, "alice")
        .patch(f"/api/v1/connectors/{connector.id}", {"name": "x"}, format="json")
        .status_code
        == 403
    )
    assert _as(world, "oscar").get(f"/api/v1/connectors/{connector.id}").status_code == 404
    assert _as(world, "oscar").get("/api/v1/connectors").json() == []
    response = _as(world, "oscar").post(
        "/api/v1/connectors", {**CONNECTOR, "team": str(world["team"].id)}, format="json"
    )
    assert response.status_code == 404  # team A does not exist for oscar
    assert (
        _as(world, "vic")
        .post(
            "/api/v1/plans",
            {"team": str(world["team"].id), "key": "AB-CD", "name": "x"},
            format="json",
        )
        .status_code
        == 403
    )
    connector.refresh_from_db()
    assert connector.name == "prod-ecr"


def test_api_tokens_cannot_change_the_configuration(world):
    client = token_client(api_token(world["plan"]))
    response = client.get("/api/v1/plans")
    assert response.status_code == 403
    assert response.json()["detail"].startswith("API tokens read credentials only")


def test_plans_jobs_and_tasks_through_the_api(world):
    connector = make_connector(world["team"])
    client = _as(world, "alice")
    job = client.post(
        "/api/v1/jobs",
        {"plan": str(world["plan"].id), "key": "TEST", "name": "Test", "stage": 2},
        format="json",
    )
    assert job.status_code == 201, job.json()
    task = {
        "job": job.json()["id"],
        "region": "eu-west-1",
        "connector": str(connector.id),
        "scope": "result",
    }
    created = client.post("/api/v1/tasks", task, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "never run"

    # The collision rule holds here too.
    again = client.post("/api/v1/tasks", task, format="json")
    assert again.status_code == 400
    assert "already writes custom.aws.ecr.* variables" in again.json()["detail"]["namespace"][0]
    bad = client.post(
        "/api/v1/tasks", {**task, "namespace": "x", "region": "cn-north-1"}, format="json"
    )
    assert "is not a region code of partition aws" in bad.json()["detail"]["region"][0]
    assert TaskConfig.objects.count() == 1

    plan = client.get("/api/v1/plans/WEB-BUILD")
    assert plan.json()["key"] == "WEB-BUILD"


def test_a_connector_in_use_answers_409(world):
    connector = make_connector(world["team"])
    TaskConfig.objects.create(job=world["job"], region="eu-west-1", connector=connector)
    response = _as(world, "ada").delete(f"/api/v1/connectors/{connector.id}")
    assert response.status_code == 409
    assert response.json()["error"] == "in_use"
    assert Connector.objects.filter(pk=connector.pk).exists()


def test_masked_variable_values_are_write_only(world):
    client = _as(world, "alice")
    response = client.post(
        "/api/v1/variables",
        {
            "team": str(world["team"].id),
            "plan": str(world["plan"].id),
            "key": "registry.password",
            "value": "Sentinel-Api-Secret",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["value"] is None
    assert response.json()["masked"] is True
    listing = client.get("/api/v1/variables")
    assert "Sentinel-Api-Secret" not in listing.content.decode()
    variable = Variable.objects.get()
    client.patch(f"/api/v1/variables/{variable.id}", {"key": "registry.password"}, format="json")
    variable.refresh_from_db()
    assert variable.secret_value.reveal() == "Sentinel-Api-Secret"

    plain = client.post(
        "/api/v1/variables",
        {"team": str(world["team"].id), "key": "aws.region", "value": "eu-west-1"},
        format="json",
    )
    assert plain.json()["value"] == "eu-west-1"
    foreign_plan = Plan.objects.create(team=world["other"], key="OTHER-PLAN", name="x")
    wrong = client.post(
        "/api/v1/variables",
        {"team": str(world["team"].id), "plan": str(foreign_plan.id), "key": "k", "value": "v"},
        format="json",
    )
    assert wrong.status_code == 400
    assert json.loads(wrong.content)["detail"]["plan"] == ["The plan belongs to another team."]


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("/api/v1/plans", {"name": 7}, "name", "Expected a string."),
        ("/api/v1/variables", {"key": "k", "plan": ""}, "plan", "Expected an ID, or null."),
        (
            "/api/v1/jobs",
            {"key": "JOB1", "name": "x", "stage": "2"},
            "stage",
            "Expected an integer.",
        ),
        (
            "/api/v1/jobs",
            {"key": "JOB1", "name": "x", "stage": True},
            "stage",
            "Expected an integer.",
        ),
        ("/api/v1/connectors", {"unattended_use": 0}, "unattended_use", "Expected true or false."),
        (
            "/api/v1/connectors",
            {"shared_with": "x"},
            "shared_with",
            "Expected a list of IDs (strings).",
        ),
        ("/api/v1/tasks", {"enabled": None}, "enabled", "This field may not be null."),
    ],
)
def test_json_values_must_have_the_type_the_schema_gives(world, path, body, field, message):
    """DRF alone would read 7 as "7", 0 as false and "" as null."""
    response = _as(world, "ada").post(path, body, format="json")
    assert response.status_code == 400
    assert response.json()["detail"][field] == [message]
