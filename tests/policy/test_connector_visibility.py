"""One rule for the connector settings only its managers read (access key ID, external ID):
the page and the API show them to admins of the owner team (and superusers), to nobody else."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tasks_app.models import Connector, Role
from tests.factories import SECRET, make_team, make_user

pytestmark = pytest.mark.django_db

KEY_ID = "AKIAIOSFODNN7SENTINL"
EXTERNAL_ID = "Sentinel-External-Id-7"


@pytest.fixture
def connector(db):
    owner = make_team("Platform", ada=Role.ADMIN, eve=Role.EDITOR, vic=Role.VIEWER)
    shared = make_team("Web", sam=Role.ADMIN, sid=Role.VIEWER)
    connector = Connector(
        team=owner,
        name="push",
        access_key_id=KEY_ID,
        secret_access_key=SECRET,
        principal_type=Connector.Principal.ASSUMED_ROLE,
        role_arn="arn:aws:iam::123456789012:role/ecr-push",
        external_id=EXTERNAL_ID,
    )
    connector.full_clean()
    connector.save()
    connector.shared_with.add(shared)
    make_user("root", is_superuser=True)
    return connector


def _user(username):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get(username=username)


@pytest.mark.parametrize(
    ("username", "sees"),
    [
        ("ada", True),
        ("root", True),
        ("eve", False),
        ("vic", False),
        ("sam", False),  # admin of a team the connector is shared with
        ("sid", False),
    ],
)
def test_the_page_and_the_api_show_owner_settings_to_the_same_people(
    connector, client, username, sees
):
    client.force_login(_user(username))
    page = client.get(reverse("connector_detail", args=[connector.id])).content.decode()
    api = APIClient()
    api.force_login(_user(username))
    detail = api.get(f"/api/v1/connectors/{connector.id}").json()
    (listed,) = api.get("/api/v1/connectors").json()

    for body in (detail, listed):
        assert (body["access_key_id"], body["external_id"]) == (
            (KEY_ID, EXTERNAL_ID) if sees else (None, None)
        )
        assert body["role_arn"] == connector.role_arn  # shown to everyone who may use it
    assert (KEY_ID in page, EXTERNAL_ID in page) == (sees, sees)
    assert SECRET not in page + str(detail)


def test_the_connector_list_decides_access_without_a_query_per_connector(
    connector, django_assert_max_num_queries
):
    for i in range(20):
        extra = Connector(
            team=connector.team, name=f"c{i}", access_key_id=KEY_ID, secret_access_key=SECRET
        )
        extra.save()
        extra.shared_with.add(*connector.shared_with.all())
    api = APIClient()
    api.force_login(_user("sam"))
    with django_assert_max_num_queries(8):
        listing = api.get("/api/v1/connectors").json()
    assert len(listing) == 21
    assert {c["access_key_id"] for c in listing} == {None}
