"""Pull-only tasks (issue 16): the token is obtained with a session policy that allows
pulling alone. moto does not enforce session policies, so the tests assert the policy
actually sent to STS; other principal kinds are refused, at save and at run time; and the
two access levels never share a refresh group."""

import json

import pytest
from django.urls import reverse
from django.utils.timezone import now

from tasks_app.identity.actor import SYSTEM
from tasks_app.lib import aws
from tasks_app.models import Job, Plan, Role, TaskConfig, Variable
from tasks_app.services.claims import refresh_claim
from tasks_app.services.runs import task_run
from tests.factories import make_connector, make_team

pytestmark = pytest.mark.django_db

ROLE = "arn:aws:iam::123456789012:role/ecr-pull"
PULL_ACTIONS = {
    "ecr:GetAuthorizationToken",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
}


@pytest.fixture
def job(db):
    team = make_team("Platform", alice=Role.EDITOR)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    return Job.objects.create(plan=plan, key="BUILD", name="Build")


def _task(job, connector, **fields):
    fields.setdefault("region", "eu-west-1")
    fields.setdefault("namespace", f"ns{TaskConfig.objects.count()}")
    task = TaskConfig(job=job, connector=connector, **fields)
    task.full_clean()
    task.save()
    return task


def _sts_calls(calls):
    return [c for c in calls if c["operation"].startswith("sts:")]


@pytest.mark.parametrize(
    ("kind", "operation"),
    [("assumed_role", "sts:AssumeRole"), ("federated_user", "sts:GetFederationToken")],
)
def test_pull_only_sends_the_pull_policy_to_sts(
    job, aws_endpoint, aws_calls, ecr_expiry, kind, operation
):
    extra = {"role_arn": ROLE} if kind == "assumed_role" else {}
    connector = make_connector(job.plan.team, principal_type=kind, **extra)
    task = _task(job, connector, access=TaskConfig.Access.PULL)
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert run.outcome == "succeeded", run.error_message

    (call,) = _sts_calls(aws_calls)
    assert call["operation"] == operation
    policy = json.loads(call["params"]["Policy"])
    (statement,) = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert set(statement["Action"]) == PULL_ACTIONS
    assert "PolicyArns" not in call["params"]  # not the power-user managed policy


def test_push_and_pull_sends_no_pull_policy(job, aws_endpoint, aws_calls, ecr_expiry):
    connector = make_connector(job.plan.team, principal_type="assumed_role", role_arn=ROLE)
    task = _task(job, connector)
    assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome == "succeeded"
    (call,) = _sts_calls(aws_calls)
    assert "Policy" not in call["params"]


@pytest.mark.parametrize(
    ("connector_fields", "message"),
    [
        ({}, "Pull only needs a connector that assumes a role or becomes a federated user"),
        (
            {"principal_type": "session_token"},
            "Pull only needs a connector that assumes a role",
        ),
        (
            {
                "principal_type": "assumed_role",
                "role_arn": ROLE,
                "session_policy": '{"Version": "2012-10-17", "Statement": []}',
            },
            "Pull only passes a session policy of its own, and connector prod-ecr has one",
        ),
    ],
)
def test_pull_only_is_refused_where_it_cannot_work(client, job, connector_fields, message):
    connector = make_connector(job.plan.team, **connector_fields)
    client.force_login(job.plan.team.members.get())
    response = client.post(
        reverse("task_create", args=[job.id]),
        {
            "region_choice": "eu-west-1",
            "namespace": "custom.aws",
            "scope": "local",
            "credentials_source": "connector",
            "connector_choice": str(connector.id),
            "access": "pull",
        },
    )
    (error,) = response.context["form"].errors["access"]
    assert error.startswith(message)
    assert not TaskConfig.objects.exists()


def test_the_host_identity_needs_a_role_for_pull_only(job, settings):
    settings.ALLOW_HOST_CREDENTIALS = True
    job.plan.team.host_credentials_allowed = True
    job.plan.team.save()
    task = TaskConfig(
        job=job, region="eu-west-1", credentials_source="host", access=TaskConfig.Access.PULL
    )
    from django.core.exceptions import ValidationError

    from tasks_app.services.validation import task_validate

    with pytest.raises(ValidationError) as refused:
        task_validate(task)
    assert "needs a role to assume (Role ARN)" in refused.value.message_dict["access"][0]
    task.role_arn = ROLE
    task_validate(task)


def test_a_connector_variable_is_checked_when_the_task_runs(job, aws_endpoint, aws_calls):
    plain = make_connector(job.plan.team)
    Variable.objects.create(team=job.plan.team, plan=job.plan, key="c", value=str(plain.id))
    task = _task(job, None, connector_variable="${bamboo.c}", access=TaskConfig.Access.PULL)
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert run.outcome == "failed"
    assert run.error_class == "PullOnlyNotPossible"
    assert aws_calls == []


def test_pull_and_push_tasks_never_share_a_refresh_group(job):
    connector = make_connector(job.plan.team, principal_type="assumed_role", role_arn=ROLE)
    at = now()
    _task(job, connector, refresh_due_at=at)
    _task(job, connector, refresh_due_at=at)
    _task(job, connector, refresh_due_at=at, access=TaskConfig.Access.PULL)
    claims = refresh_claim(at=at)
    assert sorted(c.size for c in claims) == [1, 2]
    assert sorted(c.group.endswith("|pull") for c in claims) == [False, True]


def test_the_pull_policy_allows_pulling_alone():
    (statement,) = json.loads(aws.PULL_ONLY_POLICY)["Statement"]
    assert set(statement["Action"]) == PULL_ACTIONS
    assert not {"ecr:PutImage", "ecr:InitiateLayerUpload"} & set(statement["Action"])
