"""The headers every answer carries (SPEC §9), error answers included, and no-store wherever
a secret travels."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tasks_app.middleware import ADMIN_CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY
from tasks_app.models import Role
from tests.factories import make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(db):
    return make_team("Platform", ada=Role.ADMIN).members.get()


def _assert_headers(response, policy=CONTENT_SECURITY_POLICY):
    assert response["Content-Security-Policy"] == policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cross-Origin-Opener-Policy"] == "same-origin"


@pytest.mark.parametrize(
    "path",
    [
        "/login/",
        "/",
        "/connectors/",
        "/no-such-page/",
        "/?plan=%00",
        "/api/v1/connectors",
        "/api/v1/connectors/not-a-uuid",
        "/api/v1/plans/A%00/variables",
        "/healthz",
    ],
)
def test_every_answer_carries_the_security_headers(client, ada, path):
    client.force_login(ada)
    _assert_headers(client.get(path))


def test_the_admin_gets_its_own_policy(client, ada):
    client.force_login(ada)
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403
    _assert_headers(response, ADMIN_CONTENT_SECURITY_POLICY)


def test_a_token_is_shown_once_with_no_store(client, ada):
    from tasks_app.models import Job, Plan

    plan = Plan.objects.create(team=ada.teams.get(), key="WEB-BUILD", name="Web")
    Job.objects.create(plan=plan, key="BUILD", name="Build")
    client.force_login(ada)
    response = client.post(reverse("token_create"), {"name": "ci", "binding": f"plan:{plan.id}"})
    assert "ecrp_" in response.content.decode()
    assert "no-store" in response["Cache-Control"].split(", ")
    _assert_headers(response)


def test_api_errors_are_never_cached_by_shared_caches(ada):
    api = APIClient()
    api.force_login(ada)
    response = api.get("/api/v1/tasks/00000000-0000-0000-0000-000000000000/variables")
    assert response.status_code == 404
    _assert_headers(response)
