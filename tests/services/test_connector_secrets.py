"""A connector's secret access key appears nowhere but in its ciphertext column."""

import logging
import re

import pytest
from django.db import connection
from django.urls import reverse

from tasks_app.models import AuditEvent, Connector, Role
from tests.factories import make_team

pytestmark = pytest.mark.django_db

SENTINEL = "Sentinel/Secret+Key=9f2c1e0000000000000000"[:40]
BOTO_LOGGERS = ["botocore", "boto3", "urllib3", "s3transfer", "ecrportal"]


def test_a_sentinel_secret_never_leaves_its_encrypted_column(client, aws_endpoint, caplog):
    team = make_team("Platform", alice=Role.ADMIN)
    client.force_login(team.members.get())
    pages = []
    with caplog.at_level(logging.DEBUG):
        for name in BOTO_LOGGERS:
            caplog.set_level(logging.DEBUG, logger=name)
        response = client.post(
            reverse("connector_create"),
            {
                "owner": str(team.id),
                "name": "push",
                "partition": "aws",
                "credentials": "access_key",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": SENTINEL,
                "principal_type": "assumed_role",
                "role_arn": "arn:aws:iam::123456789012:role/ecr-push",
            },
        )
        connector = Connector.objects.get(name="push")
        pages.append(response.content.decode())
        for name in ("connector_detail", "connector_edit", "connector_delete"):
            pages.append(client.get(reverse(name, args=[connector.id])).content.decode())
        pages.append(client.get(reverse("connector_list")).content.decode())
        tested = client.post(
            reverse("connector_test", args=[connector.id]), {"region": "eu-west-1"}
        )
        pages.append(tested.content.decode())
        # A failed form shows the form again: the secret is not echoed into it.
        again = client.post(
            reverse("connector_create"),
            {"owner": str(team.id), "name": "", "secret_access_key": SENTINEL},
        )
        pages.append(again.content.decode())
        pages.append(
            client.get(
                reverse("admin:tasks_app_connector_change", args=[connector.id])
            ).content.decode()
        )

    assert "Signed in as arn:aws:sts::123456789012:assumed-role" in pages[5]
    for page in pages:
        assert SENTINEL not in page
    # botocore logged at DEBUG (request and response bodies) and none of it holds the secret.
    assert any(r.name.startswith("botocore") for r in caplog.records)
    assert SENTINEL not in caplog.text
    for event in AuditEvent.objects.all():
        assert SENTINEL not in f"{event.summary} {event.changes}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM tasks_app_connector")
        assert SENTINEL not in str(cursor.fetchall())
    assert connector.secret_access_key.reveal() == SENTINEL


def test_temporary_credentials_from_sts_are_masked_in_botocore_logs(aws_endpoint, caplog):
    from tasks_app.lib import aws
    from tasks_app.services.connectors import principal_for
    from tests.factories import make_connector

    team = make_team("Platform")
    connector = make_connector(
        team, principal_type="assumed_role", role_arn="arn:aws:iam::123456789012:role/r"
    )
    with caplog.at_level(logging.DEBUG):
        for name in BOTO_LOGGERS:
            caplog.set_level(logging.DEBUG, logger=name)
        authorization = aws.ecr_authorization(
            principal_for(connector), caller="ecrportal-scheduler", region="eu-west-1"
        )
    assert "SecretAccessKey" in caplog.text  # the response body was logged...
    assert not re.search(r"<SecretAccessKey>(?!\*{8})", caplog.text)  # ...masked
    assert not re.search(r"<SessionToken>(?!\*{8})", caplog.text)
    assert authorization.token not in caplog.text
