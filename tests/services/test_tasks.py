"""Configuring plans, jobs, variables and Amazon ECR credentials tasks (SPEC §2, §4.1, §5)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tasks_app.models import (
    AuditEvent,
    Job,
    Plan,
    Role,
    Scope,
    TaskConfig,
    TaskRun,
    Variable,
)
from tasks_app.rules.generated_variables import generated_keys
from tasks_app.services.validation import task_validate
from tasks_app.services.variables import variables_for_job, variables_for_plan
from tests.factories import generated, give_credential, make_connector, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(db):
    team = make_team("Platform", alice=Role.EDITOR, vic=Role.VIEWER)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build", stage=1)
    return team, connector, plan, job


def _user(team, name):
    return team.members.get(username=name)


def _task_form(connector, **changes):
    data = {
        "description": "Push images",
        "region_choice": "eu-west-1",
        "region_variable": "",
        "registry_id": "",
        "namespace": "custom.aws",
        "scope": "local",
        "credentials_source": "connector",
        "connector_choice": str(connector.id) if connector else "",
        "connector_variable": "",
        "role_arn": "",
    }
    data.update(changes)
    return data


def _create(job, connector, **fields):
    fields.setdefault("region", "eu-west-1")
    task = TaskConfig(job=job, connector=connector, **fields)
    task.full_clean()
    task.save()
    return task


# --- the task form ------------------------------------------------------------------


def test_an_editor_creates_a_task(client, world):
    team, connector, _plan, job = world
    client.force_login(_user(team, "alice"))
    response = client.post(reverse("task_create", args=[job.id]), _task_form(connector))
    task = TaskConfig.objects.get()
    assert response["Location"] == reverse("task_detail", args=[task.id])
    assert (task.region, task.connector, task.namespace, task.scope, task.enabled) == (
        "eu-west-1",
        connector,
        "custom.aws",
        "local",
        True,
    )
    assert AuditEvent.objects.get(action="task.created").changes["connector_id"] == str(
        connector.id
    )


def test_variables_and_host_settings_are_stored_only_where_they_apply(client, world):
    team, connector, _plan, job = world
    client.force_login(_user(team, "alice"))
    client.post(
        reverse("task_create", args=[job.id]),
        _task_form(
            connector,
            region_choice="variable",
            region_variable="${bamboo.aws.region}",
            connector_choice="variable",
            connector_variable="${bamboo.aws.connector}",
            role_arn="arn:aws:iam::123456789012:role/ignored",
            disabled="on",
            unresolved_allowed="on",  # neither variable is defined yet
        ),
    )
    task = TaskConfig.objects.get()
    assert (task.region, task.region_variable) == ("", "${bamboo.aws.region}")
    assert (task.connector, task.connector_variable) == (None, "${bamboo.aws.connector}")
    assert task.role_arn == ""
    assert task.enabled is False


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"description": "d" * 256}, "description", "at most 255 characters"),
        ({"region_choice": ""}, "region_choice", "This field is required."),
        ({"region_choice": "mars-1"}, "region_choice", "Select a valid choice. mars-1"),
        (
            {"region_choice": "cn-north-1"},
            "region_choice",
            "cn-north-1 is not a region code of partition aws where Amazon ECR exists",
        ),
        (
            {"region_choice": "variable", "region_variable": "aws.region"},
            "region_variable",
            "Enter a variable reference of the form ${bamboo.<key>}, e.g. ${bamboo.aws.region}",
        ),
        (
            {"region_choice": "variable", "region_variable": "${bamboo.}"},
            "region_variable",
            "Enter a variable reference of the form ${bamboo.<key>}",
        ),
        (
            {"registry_id": "12345"},
            "registry_id",
            "Enter the 12-digit AWS account ID of the registry, e.g. 123456789012, or leave "
            "it empty for the default registry of the credentials' account.",
        ),
        ({"registry_id": "12345678901a"}, "registry_id", "Enter the 12-digit AWS account ID"),
        (
            {"namespace": "custom..aws"},
            "namespace",
            "Enter dot-separated names that each start with a letter",
        ),
        ({"namespace": "1custom"}, "namespace", "Enter dot-separated names"),
        ({"namespace": "custom-aws"}, "namespace", "Enter dot-separated names"),
        ({"scope": "global"}, "scope", "Select a valid choice."),
        (
            {"connector_choice": ""},
            "connector_choice",
            "Choose a connector, or use a connector variable.",
        ),
        (
            {"connector_choice": "variable", "connector_variable": "f24e81bc"},
            "connector_variable",
            "Enter a variable reference of the form ${bamboo.<key>}, e.g. ${bamboo.aws.connector}",
        ),
        ({"credentials_source": "host"}, "credentials_source", "Select a valid choice."),
    ],
)
def test_every_invalid_setting_gets_a_field_error_and_nothing_is_saved(
    client, world, changes, field, message
):
    team, connector, _plan, job = world
    client.force_login(_user(team, "alice"))
    response = client.post(reverse("task_create", args=[job.id]), _task_form(connector, **changes))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert not TaskConfig.objects.exists()


def test_only_connectors_the_team_may_use_are_offered_or_accepted(client, world):
    team, connector, _plan, job = world
    shared = make_connector(make_team("Shared"), name="shared-one")
    shared.shared_with.add(team)
    foreign = make_connector(make_team("Foreign"), name="foreign-one")
    client.force_login(_user(team, "alice"))

    page = client.get(reverse("task_create", args=[job.id])).content.decode()
    assert "prod-ecr (Platform)" in page
    assert "shared-one (Shared)" in page
    assert "foreign-one" not in page

    response = client.post(
        reverse("task_create", args=[job.id]),
        _task_form(connector, connector_choice=str(foreign.id)),
    )
    assert "Select a valid choice" in response.context["form"].errors["connector_choice"][0]
    assert not TaskConfig.objects.exists()


def test_the_host_role_source_needs_the_grant(client, world, settings):
    team, _connector, _plan, job = world
    client.force_login(_user(team, "alice"))
    settings.ALLOW_HOST_CREDENTIALS = True
    team.host_credentials_allowed = True
    team.save()
    bad = _task_form(None, credentials_source="host", role_arn="arn:aws:iam::1:role/x")
    response = client.post(reverse("task_create", args=[job.id]), bad)
    assert "Enter a role ARN of the form" in response.context["form"].errors["role_arn"][0]

    good = _task_form(None, credentials_source="host", role_arn="")
    client.post(reverse("task_create", args=[job.id]), good)
    task = TaskConfig.objects.get()
    assert (task.credentials_source, task.connector) == ("host", None)


def test_viewers_read_but_do_not_configure_or_run(client, world):
    team, connector, plan, job = world
    task = _create(job, connector)
    client.force_login(_user(team, "vic"))
    assert client.get(reverse("task_detail", args=[task.id])).status_code == 200
    for url in (
        reverse("task_edit", args=[task.id]),
        reverse("task_run", args=[task.id]),
        reverse("task_delete", args=[task.id]),
        reverse("task_create", args=[job.id]),
        reverse("job_edit", args=[job.id]),
        reverse("plan_edit", args=[plan.id]),
    ):
        assert client.post(url, _task_form(connector)).status_code == 403, url
    assert not TaskRun.objects.exists()
    assert TaskConfig.objects.count() == 1


def test_run_now_reports_the_outcome(client, world, aws_endpoint, ecr_expiry):
    team, connector, _plan, job = world
    task = _create(job, connector)
    client.force_login(_user(team, "alice"))
    page = client.post(reverse("task_run", args=[task.id]), follow=True).content.decode()
    assert "Fetched new credentials; they expire" in page
    assert "custom.aws.ecr.proxyEndpointDomain" in page
    # Masked values show as asterisks; the token itself is nowhere in the page.
    values = generated(task)
    assert values["custom.aws.ecr.authorizationToken.password"] not in page
    assert values["custom.aws.ecr.password"] not in page
    assert page.count("********") >= 3
    run = TaskRun.objects.get()
    assert (run.trigger, run.actor) == ("manual", _user(team, "alice"))
    assert AuditEvent.objects.get(action="task.run").changes["run"] == str(run.id)


def test_run_now_on_a_disabled_task_explains_why(client, world, aws_endpoint):
    team, connector, _plan, job = world
    task = _create(job, connector, enabled=False)
    client.force_login(_user(team, "alice"))
    page = client.post(reverse("task_run", args=[task.id]), follow=True).content.decode()
    assert "is disabled; it never runs." in page
    assert not TaskRun.objects.exists()


# --- collisions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second", "same_job", "collides"),
    [
        ({"scope": "result"}, {"scope": "result"}, False, True),
        ({"scope": "result"}, {"scope": "local"}, False, True),
        ({"scope": "local"}, {"scope": "local"}, True, True),
        ({"scope": "local"}, {"scope": "local"}, False, False),
        ({"scope": "result"}, {"scope": "result", "namespace": "other.ns"}, False, False),
        ({"scope": "result"}, {"scope": "result", "namespace": "custom_aws"}, False, True),
        ({"scope": "result", "enabled": False}, {"scope": "result"}, False, False),
    ],
)
def test_tasks_writing_the_same_variables_for_the_same_jobs_are_rejected(
    client, world, first, second, same_job, collides
):
    team, connector, plan, job = world
    other_job = job if same_job else Job.objects.create(plan=plan, key="TEST", name="Test")
    _create(job, connector, **first)
    form = _task_form(
        connector,
        scope=second.get("scope", "local"),
        namespace=second.get("namespace", "custom.aws"),
    )
    client.force_login(_user(team, "alice"))
    response = client.post(reverse("task_create", args=[other_job.id]), form)
    if collides:
        errors = response.context["form"].errors["namespace"]
        assert "already writes custom.aws.ecr.* variables that the same jobs see" in errors[0]
        assert TaskConfig.objects.count() == 1
    else:
        assert response.status_code == 302
        assert TaskConfig.objects.count() == 2


def test_enabling_a_task_that_would_collide_is_rejected(world):
    _team, connector, _plan, job = world
    _create(job, connector, scope="result")
    disabled = _create(job, connector, scope="result", enabled=False, namespace="custom.aws")
    disabled.enabled = True
    with pytest.raises(Exception, match="already writes"):
        task_validate(disabled)


# --- scope ------------------------------------------------------------------------------


def test_jobs_see_their_local_and_the_plans_result_variables(world):
    team, connector, plan, job = world
    test_job = Job.objects.create(plan=plan, key="TEST", name="Test", stage=2)
    build_local = _create(job, connector, namespace="build.local")
    test_local = _create(test_job, connector, namespace="test.local")
    shared = _create(job, connector, namespace="shared", scope=Scope.RESULT)
    for task in (build_local, test_local, shared):
        give_credential(task)
    other_plan = Plan.objects.create(team=team, key="WEB-DEPLOY", name="Deploy")
    other_job = Job.objects.create(plan=other_plan, key="DEPLOY", name="Deploy")
    give_credential(_create(other_job, connector, scope=Scope.RESULT))

    def keys(results):
        return sorted(r.key for r in results)

    def expected(*namespaces):
        return sorted(k for ns in namespaces for k in generated_keys(ns))

    assert keys(variables_for_job(job)) == expected("build.local", "shared")
    assert keys(variables_for_job(test_job)) == expected("shared", "test.local")
    assert keys(variables_for_plan(plan)) == expected("shared")
    assert {r.scope for r in variables_for_job(job) if r.key.startswith("shared.")} == {"result"}


def test_expired_variables_are_left_out_when_only_valid_ones_are_asked_for(world):
    _team, connector, plan, job = world
    fresh = _create(job, connector, scope=Scope.RESULT, namespace="fresh")
    stale = _create(job, connector, scope=Scope.RESULT, namespace="stale")
    give_credential(fresh)
    give_credential(stale, expires_in=timedelta(seconds=-1))
    assert keys_of(variables_for_plan(plan, valid_only=True)) == generated_keys("fresh")
    assert keys_of(variables_for_job(job, valid_only=True)) == generated_keys("fresh")
    assert len(variables_for_plan(plan)) == 14
    assert all(r.expired for r in variables_for_plan(plan) if r.task == stale)


def keys_of(results):
    return [r.key for r in results]


# --- query counts ---------------------------------------------------------------------


def test_task_lists_and_plan_pages_use_a_fixed_number_of_queries(client, world):
    team, connector, plan, job = world
    client.force_login(_user(team, "alice"))

    def queries(url):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url).status_code == 200
        return len(ctx.captured_queries)

    def add_tasks(count, offset):
        for i in range(count):
            task = _create(job, connector, namespace=f"ns{offset + i}", scope=Scope.RESULT)
            give_credential(task)

    urls = [
        reverse("task_list"),
        reverse("plan_detail", args=[plan.id]),
        reverse("job_detail", args=[job.id]),
        reverse("plan_list"),
        reverse("dashboard"),
    ]
    add_tasks(2, 0)
    few = [queries(url) for url in urls]
    add_tasks(10, 2)
    assert [queries(url) for url in urls] == few


# --- plans, jobs, variables -----------------------------------------------------------


@pytest.mark.parametrize("key", ["web-build", "WEB", "W-BUILD", "WEB-BUILD-X", "1WEB-BUILD"])
def test_plan_keys_have_the_project_plan_form(client, world, key):
    team, *_ = world
    client.force_login(_user(team, "alice"))
    response = client.post(reverse("plan_create"), {"team": str(team.id), "key": key, "name": "x"})
    assert "Enter a plan key of the form PROJECT-PLAN" in response.context["form"].errors["key"][0]
    assert Plan.objects.count() == 1


def test_plans_and_jobs_are_created_and_audited(client, world):
    team, *_ = world
    client.force_login(_user(team, "alice"))
    client.post(reverse("plan_create"), {"team": str(team.id), "key": "API-BUILD", "name": "API"})
    plan = Plan.objects.get(key="API-BUILD")
    response = client.post(
        reverse("job_create", args=[plan.id]), {"key": "JOB1", "name": "Build", "stage": 1}
    )
    job = Job.objects.get(plan=plan)
    assert response["Location"] == reverse("job_detail", args=[job.id])
    again = client.post(
        reverse("job_create", args=[plan.id]), {"key": "JOB1", "name": "x", "stage": 1}
    )
    assert again.context["form"].errors["key"] == ["Plan API-BUILD already has a job JOB1."]
    bad = client.post(reverse("job_create", args=[plan.id]), {"key": "j", "name": "x", "stage": 1})
    assert "Enter a job key of 2 to 10 capital letters" in bad.context["form"].errors["key"][0]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"plan.created", "job.created"} <= actions


def test_masked_variables_are_encrypted_and_write_only(client, world):
    team, _connector, plan, _job = world
    client.force_login(_user(team, "alice"))
    url = reverse("variable_create") + f"?plan={plan.id}"
    client.post(url, {"key": "registry.password", "value": "Sentinel-Var-Secret-1"})
    variable = Variable.objects.get(key="registry.password")
    assert variable.masked
    assert variable.value == ""
    assert variable.secret_value.reveal() == "Sentinel-Var-Secret-1"

    page = client.get(reverse("plan_detail", args=[plan.id])).content.decode()
    edit = client.get(reverse("variable_edit", args=[variable.id])).content.decode()
    assert "Sentinel-Var-Secret-1" not in page + edit
    client.post(
        reverse("variable_edit", args=[variable.id]), {"key": "registry.password", "value": ""}
    )
    variable.refresh_from_db()
    assert variable.secret_value.reveal() == "Sentinel-Var-Secret-1"
    for event in AuditEvent.objects.filter(action__startswith="variable."):
        assert "Sentinel-Var-Secret-1" not in str(event.changes)


def test_variable_keys_are_checked_and_unique_where_they_live(client, world):
    team, _connector, plan, _job = world
    client.force_login(_user(team, "alice"))
    url = reverse("variable_create") + f"?plan={plan.id}"
    bad = client.post(url, {"key": "1region", "value": "x"})
    assert "Enter a variable key that starts with a letter" in bad.context["form"].errors["key"][0]
    client.post(url, {"key": "aws.region", "value": "eu-west-1"})
    again = client.post(url, {"key": "aws.region", "value": "us-east-1"})
    assert again.context["form"].errors["key"] == [
        "A variable aws.region exists already for plan WEB-BUILD."
    ]
    # The same key as a global variable is fine: the plan's one overrides it.
    client.post(
        reverse("variable_create") + f"?team={team.id}", {"key": "aws.region", "value": "x"}
    )
    assert Variable.objects.filter(key="aws.region").count() == 2


def test_a_connector_in_use_cannot_be_deleted(client, world):
    team, connector, _plan, job = world
    _create(job, connector)
    admin = team.members.create(username="ada")
    team.memberships.filter(user=admin).update(role=Role.ADMIN)
    client.force_login(admin)
    response = client.post(reverse("connector_delete", args=[connector.id]), follow=True)
    assert "used by 1 task" in response.content.decode()
    assert connector.tasks.count() == 1
