"""ECRPORTAL_LOG_FORMAT=json (issue 25 §1): one JSON object a line with time, level, logger,
message and what the line is about (request ID, actor, task), secrets masked as ever."""

import io
import json
import logging

import pytest
from django.conf import settings
from django.utils.module_loading import import_string

from tasks_app.lib.log_context import ContextFilter, log_context, log_context_add
from tasks_app.lib.log_masking import MASK, secret_register
from tasks_app.models import Role


def _json_handler() -> tuple[logging.Handler, io.StringIO]:
    """A handler built as ECRPORTAL_LOG_FORMAT=json builds the console's, into a string."""
    options = dict(settings.LOGGING["formatters"]["json"])
    formatter = import_string(options.pop("()"))(**options)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    return handler, stream


@pytest.fixture
def json_lines():
    handler, stream = _json_handler()
    logger = logging.getLogger("ecrportal.test-json")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield logger, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)


def test_a_line_is_one_json_object_with_what_it_is_about_and_no_secret(json_lines):
    logger, lines = json_lines
    secret = "Sentinel-Json-Log-Secret-1"
    secret_register(secret)
    with log_context(request_id="req-12345678", actor="alice"):
        with log_context(task="7f0c"):
            logger.warning("fetched with %s", secret)
        log_context_add(actor="token:ecrp_abc (ci)")
        logger.info("after the task")
    logger.info("outside any request")
    first, second, third = lines()
    assert first["level"] == "WARNING"
    assert first["logger"] == "ecrportal.test-json"
    assert first["message"] == f"fetched with {MASK}"
    assert (first["request_id"], first["actor"], first["task"]) == (
        "req-12345678",
        "alice",
        "7f0c",
    )
    assert first["time"].endswith("+00:00")
    assert "task" not in second
    assert second["actor"] == "token:ecrp_abc (ci)"
    assert "request_id" not in third
    assert secret not in json.dumps([first, second, third])


def test_an_exception_is_in_the_object_masked(json_lines):
    logger, lines = json_lines
    secret = "Sentinel-Json-Log-Secret-2"
    secret_register(secret)
    try:
        raise ValueError(f"bad {secret}")
    except ValueError:
        logger.exception("failed")
    (line,) = lines()
    assert line["message"] == "failed"
    assert "ValueError" in line["exc_info"]
    assert secret not in json.dumps(line)


@pytest.mark.django_db
def test_each_answer_carries_its_request_id(client):
    sent = client.get("/healthz", HTTP_X_REQUEST_ID="lb-0123456789abcdef")
    assert sent["X-Request-ID"] == "lb-0123456789abcdef"
    made = client.get("/healthz", HTTP_X_REQUEST_ID="<script>alert(1)</script>")
    assert made["X-Request-ID"] != "<script>alert(1)</script>"
    assert len(made["X-Request-ID"]) == 32


def test_every_field_is_masked_and_the_request_object_is_not_written(json_lines, rf):
    logger, lines = json_lines
    secret = "Sentinel-Json-Log-Secret-3"
    secret_register(secret)
    request = rf.get(f"/nope?t={secret}")
    logger.warning("Not Found: /nope", extra={"request": request, "detail": f"held {secret}"})
    (line,) = lines()
    assert "request" not in line
    assert line["detail"] == f"held {MASK}"
    assert secret not in json.dumps(line)


@pytest.mark.django_db
def test_an_api_token_is_masked_by_its_shape_wherever_it_appears(json_lines):
    from tests.factories import api_token, make_plan, make_team

    logger, lines = json_lines
    raw = api_token(make_plan(make_team("Platform", alice=Role.ADMIN)))  # a real one
    logger.info("GET /api/v1/env?token=%s&x=1", raw)
    logger.info("short ecrp_abc and a word ecrp_ stay")
    first, second = lines()
    assert first["message"] == f"GET /api/v1/env?token={MASK}&x=1"
    assert second["message"] == "short ecrp_abc and a word ecrp_ stay"


@pytest.mark.django_db
def test_a_refused_host_and_a_static_file_carry_a_request_id(client, settings):
    refused = client.get("/healthz", HTTP_HOST="evil.example")
    assert refused.status_code == 400
    assert len(refused["X-Request-ID"]) == 32
    static = client.get("/static/tasks_app/copy.js")
    assert len(static["X-Request-ID"]) == 32


@pytest.mark.django_db
def test_a_scheduled_refresh_that_fails_says_which_claim_group_and_tasks(
    aws_endpoint, aws_failure
):
    from tasks_app.services.claims import refresh_claim
    from tasks_app.services.refresh import refresh_group
    from tests.factories import make_due_tasks

    handler, stream = _json_handler()
    logger = logging.getLogger("ecrportal.aws")
    logger.addHandler(handler)
    try:
        tasks = make_due_tasks(3)
        aws_failure("api.ecr:GetAuthorizationToken", "AccessDeniedException")
        (claim,) = refresh_claim()
        refresh_group(claim_id=claim.id)
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    (failed,) = [line for line in lines if "failed" in line["message"]]
    assert failed["claim"] == str(claim.id)
    assert failed["group"].startswith("connector:")
    assert set(failed["task"].split(",")) == {str(task.pk) for task in tasks}
