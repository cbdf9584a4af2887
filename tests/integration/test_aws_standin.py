"""`make demo`'s AWS stand-in (devtools/aws_standin.py) as its own process: like AWS, it
knows one key and rejects the others, so the demo can show the portal's diagnosis."""

import signal

import pytest

from devtools import aws_standin
from tasks_app.identity.actor import Actor
from tasks_app.lib import aws
from tasks_app.management.commands import demo_seed
from tasks_app.models import Role
from tasks_app.services.connectors import connector_test, principal_for
from tests.factories import make_connector, make_team
from tests.helpers import python_process, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_the_demo_seed_gives_the_demo_connector_the_key_the_stand_in_knows():
    assert demo_seed.DEMO_KEY_ID == aws_standin.DEMO_KEY_ID
    assert demo_seed.DEMO_SECRET == aws_standin.DEMO_SECRET
    assert demo_seed.WRONG_SECRET != aws_standin.DEMO_SECRET


@pytest.fixture
def standin(tmp_path, settings, monkeypatch):
    from tests.helpers import child_environ, free_port

    port = free_port()
    process = python_process(
        "aws", ["-m", "devtools.aws_standin", "--port", str(port)], child_environ(), tmp_path
    )
    process.start()
    try:
        wait_for(
            lambda: "it knows the access key" in process.output(),
            timeout=60,
            what="the stand-in to listen",
        )
        settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{port}"
        settings.AWS_ENDPOINT_URLS = {}
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield process
    finally:
        assert process.stop(signal.SIGINT) == 0


@pytest.fixture
def alice_team(db):
    team = make_team("Demo", alice=Role.ADMIN)
    return team, Actor(user=team.members.get(username="alice"), address="192.0.2.1")


def test_the_known_key_works_a_wrong_secret_and_an_unknown_key_get_the_diagnosis(
    standin, alice_team
):
    team, alice = alice_team
    right = make_connector(
        team,
        name="right",
        access_key_id=demo_seed.DEMO_KEY_ID,
        secret_access_key=demo_seed.DEMO_SECRET,
    )
    wrong = make_connector(
        team,
        name="wrong",
        access_key_id=demo_seed.DEMO_KEY_ID,
        secret_access_key=demo_seed.WRONG_SECRET,
    )
    unknown = make_connector(
        team,
        name="unknown",
        access_key_id="AKIAMADEUPKEY0000000",
        secret_access_key="made/up/secret/key/made/up/secret/key/00",
    )

    ok = connector_test(connector=right, region="eu-west-1", actor=alice)
    assert ok.ok, ok.message
    assert "ecr:GetAuthorizationToken works in eu-west-1" in ok.message

    bad = connector_test(connector=wrong, region="eu-west-1", actor=alice)
    assert (bad.ok, bad.error_code) == (False, "SignatureDoesNotMatch")
    assert bad.message == aws.explain("sts:GetCallerIdentity", "SignatureDoesNotMatch", "", None)

    stranger = connector_test(connector=unknown, region="eu-west-1", actor=alice)
    assert (stranger.ok, stranger.error_code) == (False, "InvalidClientTokenId")
    assert "does not recognise the access key ID AKIAMADEUPKEY0000000" in stranger.message


def test_ecr_answers_a_wrong_secret_in_its_own_protocol_not_in_xml(standin, alice_team):
    """A run calls ECR alone: its error must reach the portal as a code, not as XML."""
    team, _ = alice_team
    wrong = make_connector(
        team, access_key_id=demo_seed.DEMO_KEY_ID, secret_access_key=demo_seed.WRONG_SECRET
    )
    with pytest.raises(aws.AwsError) as failed:
        aws.ecr_authorization(principal_for(wrong), caller="test", region="eu-west-1")
    assert failed.value.code == "SignatureDoesNotMatch"
    assert "<" not in failed.value.explanation
    assert str(failed.value) == aws.explain(
        "ecr:GetAuthorizationToken", "SignatureDoesNotMatch", "", None
    )


def test_the_demo_key_gets_an_ecr_public_token_that_lasts_like_aws_s(standin, alice_team):
    """moto has no ECR Public: the stand-in answers it, signed and permitted as AWS does."""
    from datetime import UTC, datetime, timedelta

    team, _ = alice_team
    right = make_connector(
        team, access_key_id=demo_seed.DEMO_KEY_ID, secret_access_key=demo_seed.DEMO_SECRET
    )
    got = aws.ecr_authorization(
        principal_for(right), caller="test", region="eu-west-1", public=True
    )
    assert (got.proxy_endpoint, got.username) == ("https://public.ecr.aws", "AWS")
    left = got.expires_at - datetime.now(UTC)
    assert timedelta(hours=11, minutes=58) < left <= timedelta(hours=12)
    assert "ECR Public answers too (us-east-1)." in standin.output()

    wrong = make_connector(
        team,
        name="wrong",
        access_key_id=demo_seed.DEMO_KEY_ID,
        secret_access_key=demo_seed.WRONG_SECRET,
    )
    with pytest.raises(aws.AwsError) as failed:
        aws.ecr_authorization(principal_for(wrong), caller="test", region="us-east-1", public=True)
    assert (failed.value.code, failed.value.operation) == (
        "SignatureDoesNotMatch",
        "ecr-public:GetAuthorizationToken",
    )
