"""One rule of use (tasks_app/policy/usability.py): a refusal reads the same in a form, the
API and a run. Each case saves a task that may run, then changes what the rule reads (a grant
withdrawn, sharing stopped, a connector's kind or partition changed); the save-time error,
the configuration API's field error and the run's error then carry the same code and text."""

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils.html import escape
from rest_framework.test import APIClient

from tasks_app.models import Connector, Job, Plan, Role, TaskConfig
from tasks_app.policy import usability
from tasks_app.policy.usability import ConnectorFacts, task_use_refusal
from tasks_app.services.run_inputs import RunError, task_resolve
from tasks_app.services.validation import task_validate
from tests.factories import make_connector, make_team

pytestmark = pytest.mark.django_db

ROLE = "arn:aws:iam::123456789012:role/ecr-pull"


@pytest.fixture
def world(settings):
    settings.ALLOW_HOST_CREDENTIALS = True
    team = make_team("Platform", alice=Role.ADMIN)
    team.host_credentials_allowed = True
    team.save()
    plan = Plan.objects.create(team=team, key="WEB", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    return team, job


def _task(job, **fields) -> TaskConfig:
    fields.setdefault("region", "eu-west-1")
    task = TaskConfig(job=job, **fields)
    task_validate(task)  # it may run as saved
    task.save()
    return task


def _withdraw_host_grant(team, task):
    team.host_credentials_allowed = False
    team.save()


def _stop_sharing(team, task):
    task.connector.shared_with.remove(team)


def _move_connector_to_china(team, task):
    Connector.objects.filter(pk=task.connector_id).update(partition="aws-cn")


def _make_connector_plain_keys(team, task):
    Connector.objects.filter(pk=task.connector_id).update(principal_type="provided", role_arn="")


def _give_connector_a_policy(team, task):
    Connector.objects.filter(pk=task.connector_id).update(session_policy='{"Version": "x"}')


def _drop_role(team, task):
    TaskConfig.objects.filter(pk=task.pk).update(role_arn="")


def _host_task(team, job):
    return _task(job, credentials_source="host")


def _host_connector_task(team, job):
    return _task(job, connector=make_connector(team, name="host", credentials="host"))


def _shared_connector_task(team, job):
    connector = make_connector(make_team("Shared"), name="shared")
    connector.shared_with.add(team)
    return _task(job, connector=connector)


def _role_connector_task(team, job, **task_fields):
    connector = make_connector(team, name="role", principal_type="assumed_role", role_arn=ROLE)
    return _task(job, connector=connector, **task_fields)


def _pull_role_connector_task(team, job):
    return _role_connector_task(team, job, access="pull")


def _pull_host_task(team, job):
    return _task(job, credentials_source="host", role_arn=ROLE, access="pull")


def _public_task(team, job):
    return _task(job, connector=make_connector(team, name="public"), registry="public")


CASES = {
    "host identity grant withdrawn": (
        _host_task,
        _withdraw_host_grant,
        "HostCredentialsNotAllowed",
        "credentials_source",
    ),
    "host connector, grant withdrawn": (
        _host_connector_task,
        _withdraw_host_grant,
        "HostCredentialsNotAllowed",
        "connector",
    ),
    "sharing stopped": (_shared_connector_task, _stop_sharing, "ConnectorNotShared", "connector"),
    "region outside the connector's partition": (
        _role_connector_task,
        _move_connector_to_china,
        "RegionNotInPartition",
        "region",
    ),
    "ECR Public, connector moved out of partition aws": (
        _public_task,
        _move_connector_to_china,
        "RegionNotInPartition",
        "registry",
    ),
    "pull only, connector without a role": (
        _pull_role_connector_task,
        _make_connector_plain_keys,
        "PullOnlyNotPossible",
        "access",
    ),
    "pull only, connector with its own policy": (
        _pull_role_connector_task,
        _give_connector_a_policy,
        "PullOnlyNotPossible",
        "access",
    ),
    "pull only, host identity without a role": (
        _pull_host_task,
        _drop_role,
        "PullOnlyNotPossible",
        "access",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_a_refusal_reads_the_same_when_saved_through_a_form_the_api_and_when_run(world, case):
    team, job = world
    make, change, code, field = CASES[case]
    task = make(team, job)
    change(team, task)
    task = TaskConfig.objects.select_related("job__plan__team", "connector").get(pk=task.pk)

    with pytest.raises(ValidationError) as saved:
        task_validate(task)
    assert list(saved.value.message_dict) == [field]
    [save_message] = saved.value.message_dict[field]

    with pytest.raises(RunError) as ran:
        task_resolve(task=task, trigger="manual")
    assert ran.value.error_class == code
    assert ran.value.message == save_message

    alice = team.members.get(username="alice")
    client = APIClient()
    client.force_login(alice)
    answer = client.patch(f"/api/v1/tasks/{task.pk}", {"description": "x"}, format="json")
    assert answer.status_code == 400, answer.json()
    assert answer.json() == {"error": "invalid", "detail": {field: [save_message]}}

    page = Client()
    page.force_login(alice)
    form = {
        "description": "x",
        "registry": task.registry,
        "region_choice": task.region,
        "region_variable": "",
        "registry_id": task.registry_id,
        "namespace": task.namespace,
        "scope": task.scope,
        "credentials_source": task.credentials_source,
        "connector_choice": str(task.connector_id or ""),
        "connector_variable": "",
        "role_arn": task.role_arn,
        "access": task.access,
    }
    saved = page.post(reverse("task_edit", args=[task.pk]), form)
    assert saved.status_code == 200  # the form again, with the refusal at its field
    assert escape(save_message) in saved.content.decode()
    assert TaskConfig.objects.get(pk=task.pk).description == ""  # nothing stored


def test_every_refusal_code_has_a_case():
    codes = {
        value
        for name, value in vars(usability).items()
        if name.isupper() and isinstance(value, str) and value[0].isupper()
    }
    run_only = {usability.UNATTENDED_NOT_ALLOWED}  # saving runs nothing
    assert {code for _, _, code, _ in CASES.values()} == codes - run_only


def test_unattended_use_is_refused_only_when_nobody_is_there(world):
    team, job = world
    task = _task(job, connector=make_connector(team, name="manual", unattended_use=False))
    task_validate(task)  # saving is not a run
    assert task_resolve(task=task, trigger="manual").connector == task.connector
    with pytest.raises(RunError) as ran:
        task_resolve(task=task, trigger="schedule")
    assert ran.value.error_class == "UnattendedUseNotAllowed"


def test_a_connector_the_team_may_not_use_is_not_named():
    facts = ConnectorFacts(
        name="rivals-secret-prod",
        uses_host_identity=False,
        partition="aws",
        principal_type="provided",
        has_session_policy=False,
        unattended_use=True,
    )
    refusal = task_use_refusal(
        team_name="Platform",
        host_reason=None,
        source="connector",
        connector=facts,
        connector_shared=False,
        role_arn="",
        region="eu-west-1",
        access="push_pull",
        unattended=False,
    )
    assert refusal is not None
    assert refusal.code == "ConnectorNotShared"
    assert "rivals-secret-prod" not in refusal.message
