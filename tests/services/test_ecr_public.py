"""Amazon ECR Public (issue 25 §4): a task's registry setting, its rule (us-east-1, no
registry ID), its credential group apart from private tokens, the one call in lib/aws.py
(ecr-public:GetAuthorizationToken in us-east-1) and, through the AWS stand-in
(devtools/aws_standin.py, which answers what moto lacks), a public token run and served as
variables, a Docker config and a pull secret for public.ecr.aws."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.awsrequest import AWSResponse
from django.core.exceptions import ValidationError
from django.urls import reverse

from tasks_app.identity.actor import SYSTEM
from tasks_app.lib import aws
from tasks_app.models import AuditEvent, Role, Scope, TaskConfig
from tasks_app.selectors import ecr_policy_document
from tasks_app.services.claims import refresh_claim
from tasks_app.services.plans import task_save
from tasks_app.services.refresh import refresh_group
from tasks_app.services.run_inputs import credential_group
from tasks_app.services.runs import task_run
from tests.factories import (
    api_token,
    give_credential,
    make_connector,
    make_job,
    make_plan,
    make_team,
    token_client,
)

pytestmark = pytest.mark.django_db

PUBLIC = TaskConfig.Registry.PUBLIC
ROLE = "arn:aws:iam::123456789012:role/ecr-public-pull"


@pytest.fixture
def job(db):
    team = make_team("Platform", alice=Role.EDITOR)
    return make_job(make_plan(team))


def _task(job, connector, **fields):
    fields.setdefault("namespace", f"ns{TaskConfig.objects.count()}")
    task = TaskConfig(job=job, connector=connector, scope=Scope.LOCAL, **fields)
    task.full_clean()
    task.save()
    return task


# --- the rule ---------------------------------------------------------------------------


def test_a_public_task_is_fixed_to_us_east_1_and_drops_the_registry_id(job):
    connector = make_connector(job.plan.team)
    task = _task(
        job,
        connector,
        registry=PUBLIC,
        region="eu-west-1",
        region_variable="${bamboo.aws.region}",
        registry_id="123456789012",
    )
    task.refresh_from_db()
    assert (task.region, task.region_variable, task.registry_id) == ("us-east-1", "", "")
    assert task.public


def test_a_public_task_needs_no_region(job):
    task = _task(job, make_connector(job.plan.team), registry=PUBLIC)
    assert task.region == "us-east-1"
    with pytest.raises(ValidationError) as failed:
        _task(job, make_connector(job.plan.team, name="other"))  # private: a region is needed
    assert "region" in failed.value.message_dict


def test_making_a_task_public_drops_the_private_token_it_served(job):
    task = _task(job, make_connector(job.plan.team), region="eu-west-1")
    give_credential(task)
    task.registry = PUBLIC
    task_save(task=task, actor=SYSTEM)
    task.refresh_from_db()
    assert (task.credential, task.region) == (None, "us-east-1")
    assert task.refresh_due_at is not None  # fetched again at once
    change = AuditEvent.objects.filter(action="task.updated").latest("created").changes
    assert change["registry"] == ["private", "public"]


def test_private_and_public_tokens_never_share_a_group(job):
    connector = make_connector(job.plan.team)
    private = _task(job, connector, region="us-east-1")
    public = _task(job, connector, registry=PUBLIC)
    TaskConfig.objects.update(refresh_due_at="2000-01-01T00:00:00Z")
    claims = refresh_claim()
    assert len(claims) == 2
    assert {c.group for c in claims} == {
        credential_group(connector_id=connector.pk, host_role_arn="", region="us-east-1"),
        credential_group(
            connector_id=connector.pk, host_role_arn="", region="us-east-1", registry=PUBLIC
        ),
    }
    held = {c.group: set(TaskConfig.objects.filter(claim=c.id)) for c in claims}
    assert sorted(map(len, held.values())) == [1, 1]
    assert {private, public} == set().union(*held.values())


def test_the_policy_text_names_ecr_public_and_the_bearer_token():
    full = json.loads(ecr_policy_document(TaskConfig.Access.PUSH_PULL, PUBLIC).document)
    actions = set(full["Statement"][0]["Action"])
    assert {"ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken"} <= actions
    assert {"ecr-public:PutImage", "ecr-public:InitiateLayerUpload"} <= actions
    assert not any(a.startswith("ecr:") for a in actions)
    pull = json.loads(ecr_policy_document(TaskConfig.Access.PULL, PUBLIC).document)
    assert set(pull["Statement"][0]["Action"]) == {
        "ecr-public:GetAuthorizationToken",
        "sts:GetServiceBearerToken",
    }
    assert ecr_policy_document(TaskConfig.Access.PULL, PUBLIC).managed == (
        "AmazonElasticContainerRegistryPublicReadOnly"
    )


# --- the call: operation, region, answer ------------------------------------------------


def test_the_call_is_ecr_public_get_authorization_token_in_us_east_1(settings, monkeypatch):
    """No endpoint override: the request goes where botocore sends it for AWS, signed for
    ecr-public in us-east-1 whatever region is asked; the answer (one authorization, no
    endpoint) becomes a token for public.ecr.aws."""
    settings.AWS_ENDPOINT_URL, settings.AWS_ENDPOINT_URLS = None, {}
    sent = []
    expires = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    token = base64.b64encode(b"AWS:public-password").decode()

    def answer(request=None, **kwargs):
        sent.append(request)
        body = json.dumps(
            {"authorizationData": {"authorizationToken": token, "expiresAt": expires.timestamp()}}
        ).encode()

        class Raw:
            def stream(self, **_):
                yield body

        return AWSResponse(request.url, 200, {"x-amzn-RequestId": "req-1"}, Raw())

    monkeypatch.setattr(aws, "EVENT_HANDLERS", [*aws.EVENT_HANDLERS, ("before-send", answer)])
    principal = aws.Principal(
        credentials="access_key",
        access_key_id="AKIAIOSFODNN7EXAMPLE",
        secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    got = aws.ecr_authorization(principal, caller="test", region="eu-west-1", public=True)

    (request,) = sent
    assert request.url == "https://api.ecr-public.us-east-1.amazonaws.com/"
    assert request.headers["X-Amz-Target"] == b"SpencerFrontendService.GetAuthorizationToken"
    assert b"/us-east-1/ecr-public/aws4_request" in request.headers["Authorization"]
    assert json.loads(request.body or b"{}") == {}  # no registry IDs
    assert (got.proxy_endpoint, got.username, got.password) == (
        "https://public.ecr.aws",
        "AWS",
        "public-password",
    )
    assert (got.expires_at, got.request_id) == (expires, "req-1")


def test_a_denied_public_token_names_both_actions():
    explanation = aws.explain(
        "ecr-public:GetAuthorizationToken", "AccessDeniedException", "", None
    )
    assert "ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken" in explanation
    assert "AmazonElasticContainerRegistryPublicPowerUser" in explanation


# --- end to end through the stand-in -----------------------------------------------------


def test_a_public_task_runs_and_serves_public_ecr_aws(
    job, aws_endpoint, aws_calls, ecr_public_calls
):
    task = _task(job, make_connector(job.plan.team), registry=PUBLIC, namespace="pub")
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert run.outcome == "succeeded", run.error_message
    assert run.region == "us-east-1"
    assert ecr_public_calls() == 1
    assert [c["operation"] for c in aws_calls] == ["api.ecr-public:GetAuthorizationToken"]
    assert "/us-east-1/ecr-public/aws4_request" in aws_calls[0]["headers"]["Authorization"]

    task.refresh_from_db()
    credential = task.credential
    assert credential.proxy_endpoint == "https://public.ecr.aws"
    left = credential.expires_at - datetime.now(UTC)
    assert timedelta(hours=11, minutes=58) < left <= timedelta(hours=12)

    client = token_client(api_token(job.plan, job))
    values = client.get(f"/api/v1/tasks/{task.id}/variables").json()["variables"]
    assert values["pub.ecr.proxyEndpoint"] == "https://public.ecr.aws"
    assert values["pub.ecr.proxyEndpointDomain"] == "public.ecr.aws"
    assert values["pub.ecr.username"] == "AWS"
    auth = values["pub.ecr.authorizationToken.password"]
    assert base64.b64decode(auth).decode() == f"AWS:{values['pub.ecr.password']}"

    config = client.get(f"/api/v1/tasks/{task.id}/docker-config").json()
    assert config == {"auths": {"public.ecr.aws": {"auth": auth}}}
    secret = client.get(
        f"/api/v1/tasks/{task.id}/kubernetes-secret", HTTP_ACCEPT="application/json"
    ).json()
    inner = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert inner == {"auths": {"public.ecr.aws": {"auth": auth}}}


def test_a_scheduled_refresh_calls_ecr_public_once_per_group(
    job, aws_endpoint, ecr_public_calls, ecr_calls
):
    connector = make_connector(job.plan.team)
    public = [_task(job, connector, registry=PUBLIC) for _ in range(3)]
    private = _task(job, connector, region="us-east-1")
    TaskConfig.objects.update(refresh_due_at="2000-01-01T00:00:00Z")
    for claim in refresh_claim():
        refresh_group(claim_id=claim.id)
    assert (ecr_public_calls(), ecr_calls["n"]) == (1, 1)
    endpoints = {
        t.pk: t.credential.proxy_endpoint for t in TaskConfig.objects.select_related("credential")
    }
    assert {endpoints[t.pk] for t in public} == {"https://public.ecr.aws"}
    assert endpoints[private.pk].endswith(".dkr.ecr.us-east-1.amazonaws.com")


def test_pull_only_public_sends_the_public_pull_policy_to_sts(
    job, aws_endpoint, aws_calls, ecr_public_calls
):
    connector = make_connector(job.plan.team, principal_type="assumed_role", role_arn=ROLE)
    task = _task(job, connector, registry=PUBLIC, access=TaskConfig.Access.PULL)
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert run.outcome == "succeeded", run.error_message
    (sts,) = [c for c in aws_calls if c["operation"].startswith("sts:")]
    policy = json.loads(sts["params"]["Policy"])
    assert set(policy["Statement"][0]["Action"]) == {
        "ecr-public:GetAuthorizationToken",
        "sts:GetServiceBearerToken",
    }
    assert ecr_public_calls() == 1


@pytest.fixture
def signed_requests(aws_endpoint, monkeypatch):
    """The stand-in as `make demo` runs it: every request signed, the demo user known."""
    from moto import settings as moto_settings

    from devtools.aws_standin import require_signed_requests

    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    require_signed_requests()


def test_the_stand_in_checks_the_key_and_both_permissions(job, signed_requests):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    from devtools.aws_standin import DEMO_KEY_ID, DEMO_SECRET

    team = job.plan.team
    demo = make_connector(
        team, name="demo", access_key_id=DEMO_KEY_ID, secret_access_key=DEMO_SECRET
    )
    ok = task_run(task=_task(job, demo, registry=PUBLIC), trigger="manual", actor=SYSTEM)
    assert ok.outcome == "succeeded", ok.error_message

    wrong = make_connector(
        team, name="wrong", access_key_id=DEMO_KEY_ID, secret_access_key=DEMO_SECRET[:-1] + "X"
    )
    bad = task_run(task=_task(job, wrong, registry=PUBLIC), trigger="manual", actor=SYSTEM)
    assert (bad.outcome, bad.error_class) == ("failed", "SignatureDoesNotMatch")

    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    iam.create_user("us-east-1", "half")
    only_ecr_public = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "ecr-public:GetAuthorizationToken", "Resource": "*"}
        ],
    }
    iam.put_user_policy("half", "p", json.dumps(only_ecr_public))
    key = iam.create_access_key("half")
    half = make_connector(
        team,
        name="half",
        access_key_id=key.access_key_id,
        secret_access_key=key.secret_access_key,
    )
    denied = task_run(task=_task(job, half, registry=PUBLIC), trigger="manual", actor=SYSTEM)
    assert (denied.outcome, denied.error_class) == ("failed", "AccessDenied")
    assert "sts:GetServiceBearerToken" in denied.error_message
    assert "<" not in denied.error_message


# --- a connector's Test connection ------------------------------------------------------


def _test_connection(client, connector, **data):
    client.force_login(connector.team.members.get(username="alice"))
    url = reverse("connector_test", args=[connector.id])
    return client.post(url, {"region": "eu-west-1", **data}).content.decode()


def test_test_connection_reaches_ecr_public(client, job, aws_endpoint, ecr_public_calls):
    connector = make_connector(job.plan.team)
    body = _test_connection(client, connector, registry="public")
    assert "ecr-public:GetAuthorizationToken works (Amazon ECR Public, from us-east-1)" in body
    assert "https://public.ecr.aws" in body
    assert ecr_public_calls() == 1
    event = AuditEvent.objects.get(action="connector.tested")
    assert event.changes == {"region": "us-east-1", "ok": True, "error": "", "registry": PUBLIC}
    assert "for Amazon ECR Public" in event.summary
    # The private registry, as before: no ECR Public call.
    body = _test_connection(client, connector, registry="private")
    assert "ecr:GetAuthorizationToken works in eu-west-1" in body
    assert ecr_public_calls() == 1


def test_a_denied_ecr_public_test_links_the_policy(client, job, aws_endpoint, aws_failure):
    aws_failure("api.ecr-public:GetAuthorizationToken", "AccessDeniedException")
    body = _test_connection(client, make_connector(job.plan.team), registry="public")
    assert "ecr-public:GetAuthorizationToken" in body
    assert f'href="{reverse("ecr_policy")}"' in body
    assert not AuditEvent.objects.get(action="connector.tested").changes["ok"]


def test_ecr_public_is_not_offered_to_a_connector_of_another_partition(client, job):
    connector = make_connector(job.plan.team, partition="aws-cn", name="china")
    client.force_login(job.plan.team.members.get(username="alice"))
    page = client.get(reverse("connector_detail", args=[connector.id])).content.decode()
    assert 'type="hidden" name="registry" value="private"' in page
    # Asked anyway: the task rule's own refusal, and no AWS call, no test recorded.
    body = _test_connection(client, connector, registry="public", region="cn-north-1")
    assert "Amazon ECR Public exists in partition aws alone" in body
    assert not AuditEvent.objects.filter(action="connector.tested").exists()
