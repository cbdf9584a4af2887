"""The portal host's own AWS identity (SPEC §3): only while ECRPORTAL_ALLOW_HOST_CREDENTIALS is
on, and only for teams a superuser granted it — the team that *uses* the credentials — on every
path that reaches the host's credential chain: runs, scheduled refresh, Test connection."""

import pytest
from django.core.exceptions import ValidationError

from tasks_app.identity.actor import SYSTEM, Actor
from tasks_app.lib import aws
from tasks_app.models import Connector, Job, Plan, Role, TaskConfig, TaskRun
from tasks_app.policy.usability import connectors_usable_by
from tasks_app.services.claims import refresh_claim
from tasks_app.services.connectors import connector_test
from tasks_app.services.refresh import refresh_group
from tasks_app.services.runs import task_run
from tasks_app.services.validation import task_validate
from tests.factories import make_team

pytestmark = pytest.mark.django_db


def _actor(user):
    return Actor(user=user, address="127.0.0.1")


@pytest.fixture
def granted(settings):
    """Team Platform, granted the host's identity, with a host connector and a task using it."""
    settings.ALLOW_HOST_CREDENTIALS = True
    team = make_team("Platform", alice=Role.ADMIN)
    team.host_credentials_allowed = True
    team.save()
    connector = Connector(team=team, name="host", credentials=Connector.Credentials.HOST)
    connector.full_clean()
    connector.save()
    return team, connector


def _task_of(team, connector, key="WEB-BUILD") -> TaskConfig:
    plan = Plan.objects.create(team=team, key=key, name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    # Saved as it was before a grant was withdrawn: no validation at this point.
    return TaskConfig.objects.create(job=job, region="eu-west-1", connector=connector)


def test_a_granted_team_runs_a_host_connector(granted, aws_endpoint, aws_calls, ecr_expiry):
    team, connector = granted
    run = task_run(task=_task_of(team, connector), trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)
    assert run.outcome == TaskRun.Outcome.SUCCEEDED, run.error_message
    assert [c["operation"] for c in aws_calls] == ["api.ecr:GetAuthorizationToken"]


def test_it_refuses_a_host_connector_after_the_grant_is_withdrawn(
    granted, aws_endpoint, aws_calls
):
    team, connector = granted
    task = _task_of(team, connector)
    team.host_credentials_allowed = False
    team.save()

    for trigger in (TaskRun.Trigger.MANUAL, TaskRun.Trigger.API, TaskRun.Trigger.SCHEDULE):
        run = task_run(task=task, trigger=trigger, actor=SYSTEM)
        assert (run.outcome, run.error_class) == ("failed", "HostCredentialsNotAllowed")
    assert run.error_message == (
        "Connector host uses the portal host's own AWS identity, which is not granted to "
        "team Platform; a portal administrator grants it on the Host credentials page."
    )
    assert aws_calls == []


def test_it_refuses_a_host_connector_when_the_deployment_turns_it_off(
    granted, aws_endpoint, aws_calls, settings
):
    team, connector = granted
    task = _task_of(team, connector)
    settings.ALLOW_HOST_CREDENTIALS = False

    run = task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)
    assert (run.outcome, run.error_class) == ("failed", "HostCredentialsNotAllowed")
    assert aws_calls == []


def test_a_shared_host_connector_lends_nothing_to_a_team_never_granted(
    granted, aws_endpoint, aws_calls
):
    _, connector = granted
    other = make_team("Web", bob=Role.EDITOR)
    connector.shared_with.add(other)
    task = _task_of(other, connector, key="WEB-SITE")

    assert connector not in connectors_usable_by(other)
    with pytest.raises(ValidationError) as refused:
        task_validate(task)
    assert refused.value.message_dict["connector"] == [
        "Connector host uses the portal host's own AWS identity, which is not granted to "
        "team Web; a portal administrator grants it on the Host credentials page."
    ]
    run = task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)
    assert (run.outcome, run.error_class) == ("failed", "HostCredentialsNotAllowed")

    other.host_credentials_allowed = True
    other.save()
    assert connector in connectors_usable_by(other)
    task_validate(task)
    assert aws_calls == []


def test_the_scheduled_refresh_refuses_a_group_on_host_credentials(
    granted, aws_endpoint, aws_calls
):
    team, connector = granted
    task = _task_of(team, connector)
    team.host_credentials_allowed = False
    team.save()

    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at="2000-01-01T00:00:00Z")
    (claim,) = refresh_claim(ids=[task.id])
    assert refresh_group(claim_id=claim.id) == 0
    run = TaskRun.objects.get(task=task)
    assert (run.trigger, run.outcome, run.error_class) == (
        "schedule",
        "failed",
        "HostCredentialsNotAllowed",
    )
    assert aws_calls == []


def test_test_connection_checks_the_grant_of_the_teams_that_use_it(
    granted, aws_endpoint, aws_calls, settings
):
    team, connector = granted
    other = make_team("Web", bob=Role.EDITOR)
    connector.shared_with.add(other)
    bob = other.members.get()
    alice = team.members.get()

    outcome = connector_test(connector=connector, region="eu-west-1", actor=_actor(bob))
    assert (outcome.ok, outcome.error_code) == (False, "HostCredentialsNotAllowed")
    assert aws_calls == []

    outcome = connector_test(connector=connector, region="eu-west-1", actor=_actor(alice))
    assert outcome.ok, outcome.message

    settings.ALLOW_HOST_CREDENTIALS = False
    aws_calls.clear()
    outcome = connector_test(connector=connector, region="eu-west-1", actor=_actor(alice))
    assert (outcome.ok, outcome.error_code) == (False, "HostCredentialsNotAllowed")
    assert aws_calls == []


def test_the_aws_module_refuses_the_host_chain_while_the_setting_is_off(
    aws_endpoint, aws_calls, settings
):
    principal = aws.Principal(credentials="host")
    settings.ALLOW_HOST_CREDENTIALS = True
    aws.ecr_authorization(principal, caller="ecrportal-scheduler", region="eu-west-1")

    settings.ALLOW_HOST_CREDENTIALS = False
    with pytest.raises(aws.AwsError) as refused:  # even with a session in the cache
        aws.ecr_authorization(principal, caller="ecrportal-scheduler", region="eu-west-1")
    assert refused.value.code == "HostCredentialsNotAllowed"
    assert len(aws_calls) == 1
