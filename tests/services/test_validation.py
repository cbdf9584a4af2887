"""One home per rule: the rules that need other rows or AWS data are checked by the save
services (tasks_app/services/validation.py), so the forms and the API refuse the same input with
the same message."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tasks_app.models import Job, Plan, Role, TaskConfig, Variable
from tests.factories import SECRET, make_connector, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(client):
    team = make_team("Platform", ada=Role.ADMIN)
    ada = team.members.get()
    connector = make_connector(team, name="push")
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    TaskConfig.objects.create(job=job, region="eu-west-1", connector=connector, scope="result")
    variable = Variable(team=team, plan=plan, key="aws.region")
    variable.set_value("eu-west-1")
    variable.save()
    client.force_login(ada)
    api = APIClient()
    api.force_login(ada)
    return {"team": team, "plan": plan, "job": job, "connector": connector, "api": api}


def _form_errors(client, url, data) -> dict:
    response = client.post(url, data)
    assert response.status_code == 200, "the form should have been refused"
    return response.context["form"].errors


def _api_errors(world, path, body) -> dict:
    response = world["api"].post(path, body, format="json")
    assert response.status_code == 400, response.content
    return response.json()["detail"]


def test_a_plan_key_taken_gets_one_message(client, world):
    team = str(world["team"].id)
    form = _form_errors(
        client, reverse("plan_create"), {"team": team, "key": "WEB-BUILD", "name": "x"}
    )
    api = _api_errors(world, "/api/v1/plans", {"team": team, "key": "WEB-BUILD", "name": "x"})
    assert form["key"] == api["key"] == ["A plan WEB-BUILD exists already."]


def test_a_job_key_taken_gets_one_message(client, world):
    plan = world["plan"]
    url = reverse("job_create", args=[plan.id])
    form = _form_errors(client, url, {"key": "BUILD", "name": "x", "stage": 1})
    body = {"plan": str(plan.id), "key": "BUILD", "name": "x", "stage": 1}
    api = _api_errors(world, "/api/v1/jobs", body)
    assert form["key"] == api["key"] == ["Plan WEB-BUILD already has a job BUILD."]


def test_a_variable_key_taken_gets_one_message(client, world):
    plan = world["plan"]
    url = reverse("variable_create") + f"?plan={plan.id}"
    form = _form_errors(client, url, {"key": "aws.region", "value": "x"})
    body = {"team": str(world["team"].id), "plan": str(plan.id), "key": "aws.region", "value": "x"}
    api = _api_errors(world, "/api/v1/variables", body)
    assert (
        form["key"] == api["key"] == ["A variable aws.region exists already for plan WEB-BUILD."]
    )


def test_a_connector_name_taken_gets_one_message(client, world):
    team = str(world["team"].id)
    data = {
        "name": "push",
        "partition": "aws",
        "credentials": "access_key",
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": SECRET,
        "principal_type": "provided",
        "unattended_use": "on",
    }
    form = _form_errors(client, reverse("connector_create"), {**data, "owner": team})
    api_body = {**data, "team": team, "unattended_use": True}
    api = _api_errors(world, "/api/v1/connectors", api_body)
    assert form["name"] == api["name"] == ["Platform already has a connector called push."]


def test_a_colliding_task_gets_one_message(client, world):
    job, connector = world["job"], world["connector"]
    url = reverse("task_create", args=[job.id])
    data = {
        "region_choice": "eu-west-1",
        "namespace": "custom.aws",
        "scope": "result",
        "credentials_source": "connector",
        "connector_choice": str(connector.id),
    }
    form = _form_errors(client, url, data)
    body = {
        "job": str(job.id),
        "region": "eu-west-1",
        "namespace": "custom.aws",
        "scope": "result",
        "credentials_source": "connector",
        "connector": str(connector.id),
    }
    api = _api_errors(world, "/api/v1/tasks", body)
    assert form["namespace"] == api["namespace"]
    assert "already writes custom.aws.ecr.* variables" in form["namespace"][0]


def test_an_unknown_region_of_the_partition_gets_one_message(client, world):
    job, connector = world["job"], world["connector"]
    body = {
        "job": str(job.id),
        "region": "cn-north-1",
        "namespace": "other",
        "credentials_source": "connector",
        "connector": str(connector.id),
    }
    api = _api_errors(world, "/api/v1/tasks", body)
    assert api["region"] == [
        "cn-north-1 is not a region code of partition aws where Amazon ECR exists; choose one "
        "such as ap-southeast-2."
    ]


def test_one_submit_lists_every_error_in_the_form_and_the_api_alike(client, world):
    """Syntax, references and the rule of use at once (issue 24): a bad namespace, a region
    variable that does not exist and pull only on a connector that cannot do it."""
    job, connector = world["job"], world["connector"]
    form = _form_errors(
        client,
        reverse("task_create", args=[job.id]),
        {
            "region_choice": "variable",
            "region_variable": "${bamboo.nowhere}",
            "namespace": "not a namespace!",
            "scope": "local",
            "credentials_source": "connector",
            "connector_choice": str(connector.id),
            "access": "pull",
        },
    )
    body = {
        "job": str(job.id),
        "region_variable": "${bamboo.nowhere}",
        "namespace": "not a namespace!",
        "scope": "local",
        "credentials_source": "connector",
        "connector": str(connector.id),
        "access": "pull",
    }
    api = _api_errors(world, "/api/v1/tasks", body)
    assert set(form) == set(api) == {"namespace", "region_variable", "access"}
    for field in ("namespace", "access"):
        assert form[field] == api[field]
    # The same words, but for how to save it anyway: each in its own control's terms.
    form_words, form_how = form["region_variable"][0].split(", or ")
    api_words, api_how = api["region_variable"][0].split(", or ")
    assert form_words == api_words
    assert "nowhere" in form_words
    assert form_how.startswith("tick \u201c")
    assert api_how.startswith("send allow_undefined_variables: true")
    assert form["access"][0].startswith("Pull only needs a connector that assumes a role")
    assert TaskConfig.objects.count() == 1


def test_a_form_error_does_not_hide_a_collision(client, world):
    """The namespace collides while the region is wrong: both, at once."""
    job, connector = world["job"], world["connector"]
    url = reverse("task_create", args=[job.id])
    data = {
        "region_choice": "mars-north-1",
        "namespace": "custom.aws",
        "scope": "result",
        "credentials_source": "connector",
        "connector_choice": str(connector.id),
    }
    form = _form_errors(client, url, data)
    assert set(form) == {"region_choice", "namespace"}
    assert "already writes custom.aws.ecr.* variables" in form["namespace"][0]


def test_a_plan_name_and_a_taken_key_in_one_answer(client, world):
    team = str(world["team"].id)
    form = _form_errors(client, reverse("plan_create"), {"team": team, "key": "WEB-BUILD"})
    assert form["key"] == ["A plan WEB-BUILD exists already."]
    assert "name" in form


def test_an_undefined_connector_variable_does_not_hide_an_undefined_region_variable(client, world):
    """The walk of issue 24: both undefined showed the connector's error only, the region's
    on the next submit."""
    job = world["job"]
    data = {
        "region_choice": "variable",
        "region_variable": "${bamboo.no.region}",
        "namespace": "custom.aws",
        "scope": "local",
        "credentials_source": "connector",
        "connector_choice": "variable",
        "connector_variable": "${bamboo.no.connector}",
    }
    form = _form_errors(client, reverse("task_create", args=[job.id]), data)
    body = {
        "job": str(job.id),
        "region_variable": "${bamboo.no.region}",
        "namespace": "custom.aws",
        "scope": "local",
        "credentials_source": "connector",
        "connector_variable": "${bamboo.no.connector}",
    }
    api = _api_errors(world, "/api/v1/tasks", body)
    for errors in (form, api):
        assert set(errors) >= {"region_variable", "connector_variable"}
        assert "no.region" in errors["region_variable"][0]
        assert "no.connector" in errors["connector_variable"][0]
