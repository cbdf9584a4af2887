"""Running Amazon ECR credentials tasks against a moto server (SPEC §4.2, §5)."""

import base64
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from tasks_app.identity.actor import SYSTEM, Actor
from tasks_app.models import (
    Credential,
    Job,
    Plan,
    Role,
    Scope,
    TaskConfig,
    TaskRun,
    Variable,
)
from tasks_app.services.runs import TaskDisabled, task_run
from tasks_app.services.variables import task_variables
from tests.factories import generated, make_connector, make_team

pytestmark = pytest.mark.django_db

SUFFIXES = [
    "ecr.authorizationToken.password",
    "ecr.expirationDate",
    "ecr.proxyEndpoint",
    "ecr.proxyEndpointDomain",
    "ecr.username",
    "ecr.password",
    "ecr.json.password",
]


@pytest.fixture
def setup(db):
    team = make_team("Platform", alice=Role.EDITOR)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    return team, connector, plan, job


def _task(job, **fields):
    fields.setdefault("region", "eu-west-1")
    task = TaskConfig(job=job, **fields)
    uses_default_connector = not (
        "connector" in fields
        or fields.get("connector_variable")
        or fields.get("credentials_source") == "host"
    )
    if uses_default_connector:
        task.connector = job.plan.team.connectors.first()
    task.full_clean()
    task.save()
    return task


def _values(task) -> dict[str, str]:
    return generated(task)


def _variables(task):
    return task_variables(TaskConfig.objects.select_related("credential").get(pk=task.pk))


def test_a_run_writes_the_seven_variables(setup, aws_endpoint, ecr_expiry):
    _, connector, _, job = setup
    task = _task(job)
    run = task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)

    assert run.outcome == TaskRun.Outcome.SUCCEEDED, run.error_message
    values = _values(task)
    assert sorted(values) == sorted(f"custom.aws.{s}" for s in SUFFIXES)

    token = values["custom.aws.ecr.authorizationToken.password"]
    username, _, password = base64.b64decode(token).decode().partition(":")
    assert username == "AWS" == values["custom.aws.ecr.username"]
    assert password == values["custom.aws.ecr.password"]
    endpoint = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert values["custom.aws.ecr.proxyEndpoint"] == endpoint
    assert (
        values["custom.aws.ecr.proxyEndpointDomain"]
        == "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    )

    expiration = values["custom.aws.ecr.expirationDate"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", expiration)
    parsed = datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert timedelta(hours=11, minutes=59) < parsed - datetime.now(UTC) <= timedelta(hours=12)

    document = json.loads(values["custom.aws.ecr.json.password"])
    assert document == {
        "authorizationToken": token,
        "expirationDate": expiration,
        "proxyEndpoint": endpoint,
        "proxyEndpointDomain": values["custom.aws.ecr.proxyEndpointDomain"],
        "username": "AWS",
        "password": password,
    }

    masked = {v.key for v in _variables(task) if v.masked}
    assert masked == {
        "custom.aws.ecr.authorizationToken.password",
        "custom.aws.ecr.password",
        "custom.aws.ecr.json.password",
    }
    # Masked values are read only on request; the token is stored once, encrypted only.
    for variable in _variables(task):
        assert (variable.value == "") == variable.masked
    (credential,) = Credential.objects.all()
    assert credential.token.reveal() == token
    with connection.cursor() as cursor:
        cursor.execute("SELECT token FROM tasks_app_credential")
        (stored,) = cursor.fetchone()
    assert token not in stored
    assert password not in stored
    run.refresh_from_db()
    assert (run.region, run.connector, run.token_expires_at) == ("eu-west-1", connector, parsed)
    task.refresh_from_db()
    assert (task.status, task.expires_at, task.last_run_ok) == ("ok", parsed, True)


def test_a_custom_namespace(setup, aws_endpoint, ecr_expiry):
    *_, job = setup
    task = _task(job, namespace="team.registry")
    assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome == "succeeded"
    assert sorted(_values(task)) == sorted(f"team.registry.{s}" for s in SUFFIXES)


def test_a_secondary_account_registry(setup, aws_endpoint, aws_calls, ecr_expiry):
    *_, job = setup
    task = _task(job, registry_id="210987654321", region="ap-southeast-2")
    task_run(task=task, trigger="manual", actor=SYSTEM)
    call = next(c for c in aws_calls if c["operation"] == "api.ecr:GetAuthorizationToken")
    assert call["params"] == {"registryIds": ["210987654321"]}
    assert _values(task)["custom.aws.ecr.proxyEndpoint"] == (
        "https://210987654321.dkr.ecr.ap-southeast-2.amazonaws.com"
    )


def test_moto_expiry_in_the_past_is_stored_as_expired(setup, aws_endpoint):
    *_, job = setup
    task = _task(job)
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    task.refresh_from_db()
    assert run.token_expires_at == datetime(2015, 1, 1, tzinfo=UTC)
    assert task.status == "expired"
    assert _values(task)["custom.aws.ecr.expirationDate"] == "2015-01-01T00:00:00Z"


def test_a_failed_aws_call_keeps_the_previous_variables(
    setup, aws_endpoint, aws_failure, ecr_expiry
):
    *_, job = setup
    task = _task(job)
    task_run(task=task, trigger="manual", actor=SYSTEM)
    before = _values(task)

    aws_failure("api.ecr:GetAuthorizationToken", "AccessDeniedException")
    run = task_run(task=task, trigger="manual", actor=SYSTEM)

    assert run.outcome == TaskRun.Outcome.FAILED
    assert run.error_class == "AccessDeniedException"
    assert "may not call ecr:GetAuthorizationToken" in run.error_message
    assert run.aws_request_id == "req-injected-1"
    assert _values(task) == before
    task.refresh_from_db()
    assert task.status == "failing"  # the old token is still valid
    assert "may not call ecr:GetAuthorizationToken" in task.last_error


@pytest.mark.django_db(transaction=True)
def test_no_transaction_is_open_during_the_aws_call(aws_endpoint, monkeypatch):
    from tasks_app.lib import aws

    team = make_team("Platform")
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = _task(job, connector=make_connector(team))
    seen = []
    monkeypatch.setattr(
        aws,
        "EVENT_HANDLERS",
        [
            *aws.EVENT_HANDLERS,
            ("before-call", lambda **kw: seen.append(connection.in_atomic_block)),
        ],
    )
    task_run(task=task, trigger="manual", actor=SYSTEM)
    assert seen == [False]


def test_region_variables_resolve_with_plan_overriding_global(setup, aws_endpoint, ecr_expiry):
    team, _, plan, job = setup
    Variable.objects.create(team=team, key="aws.region", value="us-east-1")
    task = _task(job, region_variable="${bamboo.aws.region}")
    assert task_run(task=task, trigger="manual", actor=SYSTEM).region == "us-east-1"

    Variable.objects.create(team=team, plan=plan, key="aws.region", value=" ap-southeast-2 ")
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert run.region == "ap-southeast-2"
    assert "ap-southeast-2" in _values(task)["custom.aws.ecr.proxyEndpoint"]


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {},
            "The region variable ${bamboo.aws.region} is not defined: neither plan WEB-BUILD "
            "nor team Platform has a variable aws.region (defined: none yet).",
        ),
        (
            {"aws.region": "moon-1"},
            "The region variable ${bamboo.aws.region} is 'moon-1', which is not a region code "
            "of partition aws where Amazon ECR exists (such as ap-southeast-2).",
        ),
        (
            {"aws.region": "cn-north-1"},
            "The region variable ${bamboo.aws.region} is 'cn-north-1', which is not a region",
        ),
    ],
)
def test_a_bad_region_variable_fails_the_run_naming_it(setup, aws_endpoint, variables, message):
    team, _, plan, job = setup
    for key, value in variables.items():
        Variable.objects.create(team=team, plan=plan, key=key, value=value)
    task = _task(job, region_variable="${bamboo.aws.region}")
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert run.outcome == TaskRun.Outcome.FAILED
    assert run.error_message.startswith(message)
    assert not Credential.objects.exists()


def test_a_masked_variable_value_is_not_shown_in_the_error(setup, aws_endpoint):
    team, _, plan, job = setup
    variable = Variable(team=team, plan=plan, key="region.secret")
    variable.set_value("not-a-region-but-secret")
    variable.save()
    task = _task(job, region_variable="${bamboo.region.secret}")
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert "is ********, which is not a region code" in run.error_message
    assert "not-a-region-but-secret" not in run.error_message


def test_connector_variables_resolve_to_connectors_the_team_may_use(
    setup, aws_endpoint, ecr_expiry
):
    team, _, plan, job = setup
    other_team = make_team("Shared Services")
    shared = make_connector(other_team, name="shared")
    shared.shared_with.add(team)
    foreign = make_connector(make_team("Elsewhere"), name="foreign")
    variable = Variable.objects.create(team=team, plan=plan, key="aws.connector", value="")
    task = _task(job, connector_variable="${bamboo.aws.connector}")

    variable.value = str(shared.id)
    variable.save()
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert (run.outcome, run.connector) == ("succeeded", shared)

    for value in (str(foreign.id), "not-a-uuid"):
        variable.value = value
        variable.save()
        run = task_run(task=task, trigger="manual", actor=SYSTEM)
        assert run.outcome == "failed"
        assert run.error_class == "InvalidConnectorVariable"
        # It lists the connectors the team may use, not an example ID.
        own = team.connectors.get()
        assert run.error_message == (
            f"The connector variable ${{bamboo.aws.connector}} is {value!r}, which is not the "
            f"ID of a connector that team Platform may use ({own.name} = {own.id}, "
            f"shared = {shared.id})."
        )


def test_a_disabled_task_never_runs(setup, aws_endpoint, aws_calls):
    *_, job = setup
    task = _task(job, enabled=False)
    with pytest.raises(TaskDisabled):
        task_run(task=task, trigger="manual", actor=SYSTEM)
    assert not TaskRun.objects.exists()
    assert aws_calls == []
    assert task.status == "disabled"


def test_unattended_runs_need_a_connector_that_allows_them(setup, aws_endpoint, ecr_expiry):
    _, connector, _, job = setup
    connector.unattended_use = False
    connector.save()
    task = _task(job)
    for trigger in ("schedule", "api"):
        run = task_run(task=task, trigger=trigger, actor=SYSTEM)
        assert (run.outcome, run.error_class) == ("failed", "UnattendedUseNotAllowed")
    assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome == "succeeded"


def test_the_host_role_with_a_role_to_assume(setup, aws_endpoint, aws_calls, ecr_expiry, settings):
    team, *_, job = setup
    settings.ALLOW_HOST_CREDENTIALS = True
    team.host_credentials_allowed = True
    team.save()
    task = _task(
        job, credentials_source="host", role_arn="arn:aws:iam::123456789012:role/ecr-push"
    )
    run = task_run(task=task, trigger="schedule", actor=SYSTEM)
    assert run.outcome == "succeeded", run.error_message
    assume = aws_calls[0]
    assert assume["operation"] == "sts:AssumeRole"
    assert assume["params"]["RoleSessionName"] == "ecrportal-scheduler"

    settings.ALLOW_HOST_CREDENTIALS = False
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert (run.outcome, run.error_class) == ("failed", "HostCredentialsNotAllowed")


def test_changing_the_scope_or_namespace_keeps_variables_true(setup, aws_endpoint, ecr_expiry):
    from tasks_app.services.plans import task_save

    *_, job = setup
    task = _task(job)
    task_run(task=task, trigger="manual", actor=SYSTEM)

    actor = Actor(user=job.plan.team.members.get())

    task.scope = Scope.RESULT
    task_save(task=task, actor=actor)
    assert {v.scope for v in _variables(task)} == {"result"}

    task.namespace = "other.ns"
    task_save(task=task, actor=actor)
    assert _variables(task) == []
    task.refresh_from_db()
    assert task.status == "never run"


def test_a_connector_no_longer_shared_is_refused_at_run_time(setup, aws_endpoint, aws_calls):
    team, _, _plan, job = setup
    shared = make_connector(make_team("Shared Services"), name="shared")
    shared.shared_with.add(team)
    task = _task(job, connector=shared)
    shared.shared_with.remove(team)

    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert (run.outcome, run.error_class) == ("failed", "ConnectorNotShared")
    assert run.error_message == (
        "Team Platform may not use this connector: it is neither the team's own nor shared "
        "with it. Choose another connector."
    )
    assert aws_calls == []
