"""Connectors against a moto server on 127.0.0.1, reached through ECRPORTAL_AWS_ENDPOINT_URL."""

import json
import socket
import time

import pytest

from tasks_app.identity.actor import Actor
from tasks_app.lib import aws, caches
from tasks_app.models import Connector, Role
from tasks_app.services.connectors import connector_test, principal_for
from tests.factories import HOST_ACCESS_KEY_ID, SECRET, make_connector, make_team

pytestmark = pytest.mark.django_db

ROLE = "arn:aws:iam::123456789012:role/ecr-push"


@pytest.fixture
def team(db):
    return make_team("Platform", alice=Role.ADMIN)


def _actor(user):
    return Actor(user=user, address="192.0.2.1")


@pytest.fixture
def as_alice(team):
    return _actor(team.members.get(username="alice"))


def _ecr_call(calls):
    return next(c for c in reversed(calls) if c["operation"] == "api.ecr:GetAuthorizationToken")


def _operations(calls):
    return [c["operation"] for c in calls]


def test_provided_credentials_are_used_as_they_are(aws_endpoint, aws_calls, team, as_alice):
    connector = make_connector(team)
    outcome = connector_test(connector=connector, region="eu-west-1", actor=as_alice)

    assert outcome.ok, outcome.message
    assert outcome.identity.account == "123456789012"
    assert "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com" in outcome.message
    assert _operations(aws_calls) == ["sts:GetCallerIdentity", "api.ecr:GetAuthorizationToken"]
    signed = _ecr_call(aws_calls)["headers"]
    assert "Credential=AKIAIOSFODNN7EXAMPLE/" in signed["Authorization"]
    assert "X-Amz-Security-Token" not in signed


def test_an_assumed_role_gets_its_own_credentials(aws_endpoint, aws_calls, team, as_alice):
    connector = make_connector(
        team,
        principal_type="assumed_role",
        role_arn=ROLE,
        external_id="partner-4711",
        session_duration=900,
        set_source_identity=True,
        session_policy='{"Version": "2012-10-17",\n "Statement": []}',
    )
    outcome = connector_test(connector=connector, region="eu-west-1", actor=as_alice)

    assert outcome.ok, outcome.message
    assert (
        outcome.identity.arn == "arn:aws:sts::123456789012:assumed-role/ecr-push/ecrportal-alice"
    )
    assume = aws_calls[0]
    assert assume["operation"] == "sts:AssumeRole"
    # moto ignores ExternalId: the parameters are checked as sent.
    assert assume["params"] == {
        "RoleArn": ROLE,
        "RoleSessionName": "ecrportal-alice",
        "ExternalId": "partner-4711",
        "DurationSeconds": 900,
        "SourceIdentity": "ecrportal-alice",
        "Policy": '{"Version":"2012-10-17","Statement":[]}',
    }
    signed = _ecr_call(aws_calls)["headers"]
    assert "Credential=ASIA" in signed["Authorization"]
    assert signed["X-Amz-Security-Token"]


def test_the_default_session_duration_and_no_optional_parameters(
    aws_endpoint, aws_calls, team, as_alice
):
    connector = make_connector(team, principal_type="assumed_role", role_arn=ROLE)
    assert connector_test(connector=connector, region="us-east-1", actor=as_alice).ok
    assert aws_calls[0]["params"] == {
        "RoleArn": ROLE,
        "RoleSessionName": "ecrportal-alice",
        "DurationSeconds": 3600,
    }


def test_a_federated_user_gets_temporary_credentials(aws_endpoint, aws_calls, team, as_alice):
    connector = make_connector(team, principal_type="federated_user")
    outcome = connector_test(connector=connector, region="eu-west-1", actor=as_alice)

    assert outcome.ok, outcome.message
    federation = aws_calls[0]
    assert federation["operation"] == "sts:GetFederationToken"
    # Without a policy of its own, the ECR managed policy gives the session its rights.
    assert federation["params"] == {
        "Name": "ecrportal-alice",
        "DurationSeconds": 43200,
        "PolicyArns": [{"arn": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPowerUser"}],
    }
    assert _ecr_call(aws_calls)["headers"]["X-Amz-Security-Token"]


def test_a_federated_user_with_an_inline_policy(aws_endpoint, aws_calls, team, as_alice):
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "ecr:*"}]}
    connector = make_connector(
        team,
        principal_type="federated_user",
        session_duration=7200,
        session_policy=json.dumps(policy, indent=4),
    )
    assert connector_test(connector=connector, region="eu-west-1", actor=as_alice).ok
    params = aws_calls[0]["params"]
    assert params["Policy"] == json.dumps(policy, separators=(",", ":"))
    assert params["DurationSeconds"] == 7200
    assert "PolicyArns" not in params


def test_a_session_token_gets_temporary_credentials(aws_endpoint, aws_calls, team, as_alice):
    connector = make_connector(team, principal_type="session_token", session_duration=1800)
    outcome = connector_test(connector=connector, region="ap-southeast-2", actor=as_alice)

    assert outcome.ok, outcome.message
    assert aws_calls[0] == {
        "operation": "sts:GetSessionToken",
        "params": {"DurationSeconds": 1800},
        "headers": aws_calls[0]["headers"],
    }
    assert _ecr_call(aws_calls)["headers"]["X-Amz-Security-Token"]
    assert "ap-southeast-2" in outcome.message


def test_the_host_identity_and_a_role_assumed_from_it(
    aws_endpoint, aws_calls, team, as_alice, settings
):
    settings.ALLOW_HOST_CREDENTIALS = True
    team.host_credentials_allowed = True
    team.save()
    host = make_connector(team, name="host", credentials="host")
    assert connector_test(connector=host, region="eu-west-1", actor=as_alice).ok
    assert f"Credential={HOST_ACCESS_KEY_ID}/" in _ecr_call(aws_calls)["headers"]["Authorization"]

    aws_calls.clear()
    chained = make_connector(
        team, name="host-role", credentials="host", principal_type="assumed_role", role_arn=ROLE
    )
    assert connector_test(connector=chained, region="eu-west-1", actor=as_alice).ok
    assert f"Credential={HOST_ACCESS_KEY_ID}/" in aws_calls[0]["headers"]["Authorization"]
    assert "Credential=ASIA" in _ecr_call(aws_calls)["headers"]["Authorization"]


def test_temporary_credentials_and_clients_are_reused(aws_endpoint, aws_calls, team):
    connector = make_connector(team, principal_type="assumed_role", role_arn=ROLE)
    principal = principal_for(connector)
    for _ in range(3):
        aws.ecr_authorization(principal, caller="ecrportal-scheduler", region="eu-west-1")
    assert _operations(aws_calls).count("sts:AssumeRole") == 1
    assert _operations(aws_calls).count("api.ecr:GetAuthorizationToken") == 3

    # Another caller is another role session.
    aws.ecr_authorization(principal, caller="ecrportal-bob", region="eu-west-1")
    assert _operations(aws_calls).count("sts:AssumeRole") == 2


def test_the_session_cache_keeps_the_most_recently_used_and_bounds_their_clients(
    aws_endpoint, aws_calls, settings
):
    settings.AWS_SESSIONS = 3
    principals = [
        aws.Principal(
            credentials="access_key",
            access_key_id=f"AKIAEXAMPLE{i:09d}",
            secret_access_key=f"{SECRET}{i}",
        )
        for i in range(5)
    ]

    def call(i, region="eu-west-1"):
        aws.ecr_authorization(principals[i], caller="ecrportal-scheduler", region=region)

    def kept(*indexes, clients=1):
        return {principals[i]: clients for i in indexes}

    for i in range(5):
        call(i)
    assert dict(aws.cached_sessions()) == kept(2, 3, 4)  # the 3 most recent
    call(2)  # used again: now the most recent; 3 is the least
    call(0)
    assert dict(aws.cached_sessions()) == kept(4, 2, 0)
    call(1)  # 4 is the least recently used now
    assert dict(aws.cached_sessions()) == kept(2, 0, 1)

    # Clients count too: one session in many regions pushes the others out.
    for region in ("us-east-1", "us-west-2", "ap-south-1", "sa-east-1", "eu-north-1"):
        call(1, region)
        sessions = dict(aws.cached_sessions())
        assert len(sessions) <= 3, sessions
        assert sum(sessions.values()) <= 6, sessions
    assert dict(aws.cached_sessions()) == kept(1, clients=6)


@pytest.mark.parametrize(
    ("operation", "code", "explanation"),
    [
        (
            "api.ecr:GetAuthorizationToken",
            "AccessDeniedException",
            "may not call ecr:GetAuthorizationToken. Attach the AWS managed policy "
            "AmazonEC2ContainerRegistryPowerUser",
        ),
        (
            "sts:GetCallerIdentity",
            "InvalidClientTokenId",
            "AWS does not recognise the access key ID AKIAIOSFODNN7EXAMPLE",
        ),
        (
            "sts:GetCallerIdentity",
            "SignatureDoesNotMatch",
            "The secret access key does not belong to this access key ID.",
        ),
        ("sts:GetCallerIdentity", "ExpiredToken", "The temporary credentials have expired."),
    ],
)
def test_aws_errors_are_explained_in_plain_words(
    aws_endpoint, aws_failure, team, as_alice, operation, code, explanation
):
    connector = make_connector(team)
    aws_failure(operation, code)
    outcome = connector_test(connector=connector, region="eu-west-1", actor=as_alice)

    assert not outcome.ok
    assert explanation in outcome.message
    assert outcome.error_code == code
    assert outcome.missing_ecr_permission == (code == "AccessDeniedException")
    if operation.endswith("GetAuthorizationToken"):
        # The identity part worked and is shown with the explanation.
        assert outcome.message.startswith("Signed in as arn:aws:sts::123456789012:user/moto")
    connector.refresh_from_db()
    assert connector.last_test_ok is False
    assert explanation in connector.last_test_message


def test_a_refused_role_names_what_to_check(aws_endpoint, aws_failure, team, as_alice):
    connector = make_connector(
        team, principal_type="assumed_role", role_arn=ROLE, external_id="partner-4711"
    )
    aws_failure("sts:AssumeRole", "AccessDenied")
    outcome = connector_test(connector=connector, region="eu-west-1", actor=as_alice)
    assert outcome.message == (
        f"AWS refused to let the connector assume {ROLE}. Check that the role's trust policy "
        "allows this principal to assume it, and that the trust policy expects this external ID."
    )


def test_an_unreachable_endpoint_is_reported_within_ten_seconds(settings, team, as_alice):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{port}"
    connector = make_connector(team)

    started = time.monotonic()
    outcome = connector_test(connector=connector, region="eu-west-1", actor=as_alice)

    assert time.monotonic() - started < 10
    assert not outcome.ok
    assert outcome.message == (
        f"Could not connect to http://127.0.0.1:{port}/ for sts:GetCallerIdentity. Check the "
        "network, any proxy, and the ECRPORTAL_AWS_ENDPOINT_URL setting."
    )


def test_an_endpoint_that_never_answers_is_reported_within_ten_seconds(settings, team, as_alice):
    settings.AWS_READ_TIMEOUT = 2
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts connections, never answers
        settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{silent.getsockname()[1]}"
        connector = make_connector(team)

        started = time.monotonic()
        outcome = connector_test(connector=connector, region="eu-west-1", actor=as_alice)
        elapsed = time.monotonic() - started

    assert elapsed < 10
    assert not outcome.ok
    assert "did not answer sts:GetCallerIdentity within 2 s" in outcome.message


def test_regions_come_from_botocore_for_each_partition():
    assert "ap-southeast-2" in aws.regions("ecr", "aws")
    assert "cn-north-1" in aws.regions("ecr", "aws-cn")
    assert "us-gov-west-1" in aws.regions("ecr", "aws-us-gov")
    assert "cn-north-1" not in aws.regions("ecr", "aws")


def test_session_names_say_who_caused_the_call():
    assert aws.session_name("alice") == "ecrportal-alice"
    assert aws.session_name(None) == "ecrportal-scheduler"
    assert aws.session_name("first last/x") == "ecrportal-first-last-x"
    assert len(aws.session_name("x" * 100)) == 64
    assert Connector.Principal.ASSUMED_ROLE == "assumed_role"


def test_per_service_endpoints_take_precedence(aws_endpoint, settings, team, as_alice):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings.AWS_ENDPOINT_URL = dead
    settings.AWS_ENDPOINT_URLS = {"sts": aws_endpoint, "ecr": None}
    connector = make_connector(team)
    outcome = connector_test(connector=connector, region="eu-west-1", actor=as_alice)
    # STS went to moto; ECR fell back to the general endpoint, which is down.
    assert outcome.identity is not None
    assert f"Could not connect to {dead}/ for ecr:GetAuthorizationToken" in outcome.message

    caches.caches_clear()
    settings.AWS_ENDPOINT_URLS = {"sts": aws_endpoint, "ecr": aws_endpoint}
    assert connector_test(connector=connector, region="eu-west-1", actor=as_alice).ok
