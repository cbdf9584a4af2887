"""Amazon ECR Public through the API (issue 25 §4): a task created with the public registry
gets ECR Public's region and no registry ID, and an unknown registry is refused with the
choices (the credential helper's public.ecr.aws: tests/api/test_credential_helper.py)."""

import pytest
from rest_framework.test import APIClient

from tasks_app.models import Job, Plan, Role, TaskConfig
from tests.factories import make_connector, make_team


@pytest.mark.django_db
def test_a_task_created_for_ecr_public_gets_its_region_and_no_registry_id():
    team = make_team("Platform", alice=Role.EDITOR)
    job = Job.objects.create(
        plan=Plan.objects.create(team=team, key="WEB-BUILD", name="Web"), key="BUILD", name="B"
    )
    client = APIClient()
    client.force_login(team.members.get(username="alice"))
    task = {
        "job": str(job.id),
        "registry": "public",
        "region": "eu-west-1",
        "registry_id": "123456789012",
        "connector": str(make_connector(team).id),
    }
    created = client.post("/api/v1/tasks", task, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["registry"], body["region"], body["registry_id"]) == ("public", "us-east-1", "")

    unknown = client.post(
        "/api/v1/tasks", {**task, "registry": "docker-hub", "namespace": "x"}, format="json"
    )
    assert unknown.status_code == 400
    assert unknown.json()["detail"]["registry"] == ['"docker-hub" is not a valid choice.']
    assert TaskConfig.objects.count() == 1
    # Unsent, a task is for a private registry, as before the setting existed.
    del task["registry"]
    plain = client.post("/api/v1/tasks", {**task, "namespace": "z"}, format="json")
    assert plain.status_code == 201, plain.json()
    assert (plain.json()["registry"], plain.json()["region"]) == ("private", "eu-west-1")
    assert plain.json()["registry_id"] == "123456789012"
