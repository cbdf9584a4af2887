"""${bamboo.<key>} references are checked when a task is saved (issue 15): a reference that
would not resolve is a field error naming what is defined, unless the person confirms that
the variable will be defined and valid when the task runs. What to do is said in the words of
where it is said: the form's checkbox on the page, allow_undefined_variables in the API
(issue 24)."""

import json

import pytest
from django.urls import reverse

from tasks_app.models import Job, Plan, Role, TaskConfig, Variable
from tests.factories import make_connector, make_team

pytestmark = pytest.mark.django_db


def _user(team, name):
    return team.members.get(username=name)


def _task_form(connector, **changes):
    data = {
        "region_choice": "eu-west-1",
        "namespace": "custom.aws",
        "scope": "local",
        "credentials_source": "connector",
        "connector_choice": str(connector.id),
    }
    return {**data, **changes}


@pytest.fixture
def world(db):
    team = make_team("Platform", alice=Role.EDITOR)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    Variable.objects.create(team=team, plan=None, key="team.thing", value="x")
    Variable.objects.create(team=team, plan=plan, key="deploy.env", value="prod")
    return team, connector, plan, job


def _post(client, job, connector, **changes):
    return client.post(reverse("task_create", args=[job.id]), _task_form(connector, **changes))


def test_an_undefined_region_variable_is_a_field_error_naming_what_is_defined(client, world):
    team, connector, _, job = world
    client.force_login(_user(team, "alice"))
    response = _post(
        client, job, connector, region_choice="variable", region_variable="${bamboo.aws.region}"
    )
    (error,) = response.context["form"].errors["region_variable"]
    assert error.startswith(
        "The region variable ${bamboo.aws.region} is not defined: neither plan WEB-BUILD nor "
        "team Platform has a variable aws.region (defined: deploy.env, team.thing)."
    )
    assert error.endswith(
        " Define it under Variables, or tick \u201cThese variables will be defined and valid "
        "when the task runs\u201d below to save the task as it is."
    )
    page = response.content.decode()
    assert page.count("is not defined: neither plan") == 1  # once, at its field
    assert "These variables will be defined and valid when the task runs" in page
    assert "allow_undefined_variables" not in page  # the API's word, not the form's
    assert not TaskConfig.objects.exists()


def test_confirming_saves_the_task_as_it_is(client, world):
    team, connector, _, job = world
    client.force_login(_user(team, "alice"))
    _post(
        client,
        job,
        connector,
        region_choice="variable",
        region_variable="${bamboo.aws.region}",
        unresolved_allowed="on",
    )
    assert TaskConfig.objects.get().region_variable == "${bamboo.aws.region}"


def test_a_defined_variable_with_a_bad_value_is_refused_too(client, world):
    team, connector, plan, job = world
    Variable.objects.create(team=team, plan=plan, key="aws.region", value="moon-1")
    client.force_login(_user(team, "alice"))
    response = _post(
        client, job, connector, region_choice="variable", region_variable="${bamboo.aws.region}"
    )
    (error,) = response.context["form"].errors["region_variable"]
    assert error.startswith("The region variable ${bamboo.aws.region} is 'moon-1', which is not")
    assert " Correct its value under Variables, or tick" in error
    assert "Define it" not in error  # it is defined: its value is what is wrong

    Variable.objects.filter(key="aws.region").update(value="ap-southeast-2")
    _post(client, job, connector, region_choice="variable", region_variable="${bamboo.aws.region}")
    assert TaskConfig.objects.get().region_variable == "${bamboo.aws.region}"


def test_a_bad_connector_variable_lists_the_connectors_the_team_may_use(client, world):
    team, connector, plan, job = world
    elsewhere = make_connector(make_team("Elsewhere"), name="foreign")
    Variable.objects.create(team=team, plan=plan, key="aws.connector", value=str(elsewhere.id))
    client.force_login(_user(team, "alice"))
    response = _post(
        client,
        job,
        connector,
        connector_choice="variable",
        connector_variable="${bamboo.aws.connector}",
    )
    (error,) = response.context["form"].errors["connector_variable"]
    assert f"that team Platform may use (prod-ecr = {connector.id})." in error
    assert "f24e81bc" not in error
    assert not TaskConfig.objects.exists()


def test_the_api_refuses_the_same_way_and_takes_a_confirmation(client, world):
    team, connector, _, job = world
    client.force_login(_user(team, "alice"))
    body = {
        "job": str(job.id),
        "region_variable": "${bamboo.aws.region}",
        "connector": str(connector.id),
        "namespace": "custom.aws",
    }
    response = client.post("/api/v1/tasks", json.dumps(body), content_type="application/json")
    assert response.status_code == 400
    detail = response.json()["detail"]
    (error,) = detail["region_variable"]
    assert error.startswith("The region variable ${bamboo.aws.region} is not defined")
    assert error.endswith(
        " Define it under Variables, or send allow_undefined_variables: true to save the task "
        "as it is."
    )
    assert "tick" not in error
    body["allow_undefined_variables"] = True
    response = client.post("/api/v1/tasks", json.dumps(body), content_type="application/json")
    assert response.status_code == 201, response.content
    assert "allow_undefined_variables" not in response.json()
    assert TaskConfig.objects.get().region_variable == "${bamboo.aws.region}"


def test_the_remedy_follows_what_is_wrong_with_the_variable(world):
    from tasks_app.policy.references import CORRECT_IT, DEFINE_IT, ReferenceProblem, References
    from tasks_app.services.validation import CONFIRM_REFERENCES, reference_error

    team, _, plan, _ = world
    references = References(plan)
    with pytest.raises(ReferenceProblem) as undefined:
        references.region("${bamboo.aws.region}", partition=None)
    assert undefined.value.remedy == DEFINE_IT
    Variable.objects.create(team=team, plan=plan, key="aws.region", value="moon-1")
    with pytest.raises(ReferenceProblem) as invalid:
        References(plan).region("${bamboo.aws.region}", partition=None)
    assert invalid.value.remedy == CORRECT_IT
    with pytest.raises(ReferenceProblem) as foreign:
        References(plan).connector("${bamboo.deploy.env}")
    assert foreign.value.remedy == CORRECT_IT

    assert reference_error(invalid.value) == (
        f"{invalid.value.message} Correct its value under Variables, or {CONFIRM_REFERENCES} "
        "to save the task as it is."
    )
