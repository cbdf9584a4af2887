"""Errors that happen outside a view (no URL matched, a body too large, control characters,
an exception) answer JSON {"error", "detail"} under /api/ and a page elsewhere, never 500."""

import json
import logging

import pytest
from django.test import RequestFactory
from django.urls import reverse
from rest_framework.test import APIClient

from tasks_app.models import AuditEvent, Role, Variable
from tasks_app.views import errors
from tests.factories import make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def editor(db):
    team = make_team("Platform", alice=Role.EDITOR)
    return team.members.get()


def _api(user=None):
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/connectors/not-a-uuid"),
        ("get", "/api/v1/tasks/xyz/env"),
        ("get", "/api/v1/tasks/xyz/variables"),
        ("post", "/api/v1/tasks/xyz/run"),
        ("delete", "/api/v1/variables/123"),
        ("get", "/api/v1/no-such-thing"),
        ("get", "/api/v2/tasks"),
    ],
)
def test_an_address_the_api_does_not_route_answers_json_404(editor, method, path):
    response = getattr(_api(editor), method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "not_found", "detail": "There is no such resource here."}


def test_a_page_that_does_not_exist_is_still_a_page(client, editor):
    client.force_login(editor)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_body_over_the_limit_answers_413_without_a_traceback(editor, settings, caplog):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = '{"key": "aws.region", "value": "' + "x" * 20_000 + '"}'
    with caplog.at_level(logging.INFO):
        response = _api(editor).generic(
            "POST", "/api/v1/variables", body, content_type="application/json"
        )
    assert response.status_code == 413
    assert response.json() == {
        "error": "too_large",
        "detail": "The request body is larger than the 10000 bytes the portal accepts.",
    }
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not Variable.objects.exists()


def test_a_form_over_the_limit_answers_a_413_page(client, editor, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    client.force_login(editor)
    team = editor.teams.get()
    url = reverse("variable_create") + f"?team={team.id}"
    response = client.post(url, {"key": "aws.region", "value": "x" * 20_000})
    assert response.status_code == 413
    assert "larger than the 10000 bytes" in response.content.decode()
    assert not Variable.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/?plan=%00",
        "/?team=%00&status=ok",
        "/audit/?actor=%00",
        "/runs/?outcome=a%00b",
        "/?%00=1",
        "/variables/?x=%01",
    ],
)
def test_control_characters_in_a_page_address_answer_400(client, editor, path):
    client.force_login(editor)
    response = client.get(path)
    assert response.status_code == 400
    assert "control character" in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/plans/A%00/variables",
        "/api/v1/plans/WEB-BUILD/variables?job=%00",
        "/api/v1/tasks?x=%00",
    ],
)
def test_control_characters_in_an_api_address_answer_json_400(editor, path):
    response = _api(editor).get(path)
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"


def test_a_content_length_that_is_not_a_number_answers_400(editor):
    response = _api(editor).generic(
        "POST", "/api/v1/variables", "{}", content_type="application/json", CONTENT_LENGTH="x1"
    )
    assert response.status_code == 400
    assert response.json()["detail"] == "The Content-Length header is not a number."


def test_tabs_and_ordinary_unicode_pass(client, editor):
    client.force_login(editor)
    assert client.get("/audit/?actor=%09Jos%C3%A9").status_code == 200


def test_an_unexpected_error_under_the_api_answers_json_500():
    request = RequestFactory().get("/api/v1/tasks/00000000-0000-0000-0000-000000000000/env")
    response = errors.server_error(request)
    assert response.status_code == 500
    assert response["Content-Type"] == "application/json"
    assert response.content == (
        b'{"error": "server_error", "detail": "An internal error occurred; it has been logged."}'
    )


def test_a_csrf_failure_under_the_api_answers_json_403():
    request = RequestFactory().post("/api/v1/schema/")
    response = errors.csrf_failure(request, reason="CSRF cookie not set.")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert b'"error": "csrf_failed"' in response.content
    assert not AuditEvent.objects.exists()


def _database_down(monkeypatch, target, name):
    from django.db import OperationalError

    def down(*args, **kwargs):
        raise OperationalError("connection failed: the database system is starting up")

    monkeypatch.setattr(target, name, down)


def test_a_database_outage_answers_an_api_client_503_with_retry_after(monkeypatch, caplog):
    from django.test import Client

    from tasks_app.api.authentication import BearerTokenAuthentication

    _database_down(monkeypatch, BearerTokenAuthentication, "authenticate")
    client = Client(raise_request_exception=False)
    with caplog.at_level(logging.INFO):
        response = client.get("/api/v1/plans/WEB-BUILD/variables", HTTP_AUTHORIZATION="Bearer x")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json() == {
        "error": "unavailable",
        "detail": "The portal cannot reach the database right now; try again in 5 seconds.",
    }
    # One line, no traceback: the database's error, not a bug of the portal.
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.exc_info is None
    assert record.getMessage() == (
        "Service Unavailable: /api/v1/plans/WEB-BUILD/variables (the database is unavailable: "
        "OperationalError: connection failed: the database system is starting up)"
    )


def test_a_database_outage_answers_a_person_a_503_page(client, editor, monkeypatch):
    from django.contrib.sessions.backends.db import SessionStore

    client.force_login(editor)
    _database_down(monkeypatch, SessionStore, "load")  # before any view: the session
    client.raise_request_exception = False
    response = client.get("/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Content-Type"].startswith("text/html")
    assert b"The portal cannot reach the database right now" in response.content


def test_a_broker_outage_answers_503_naming_the_broker():
    from kombu.exceptions import OperationalError

    request = RequestFactory().post("/api/v1/tasks/00000000-0000-0000-0000-000000000000/run")
    try:
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
    except OperationalError:
        response = errors.server_error(request)
    assert response.status_code == 503
    assert json.loads(response.content)["detail"] == (
        "The portal cannot reach the message broker right now; try again in 5 seconds."
    )
