"""What a person sees when AWS, or something in its place, fails (issue 24, item 4).

The portal talks to a stand-in that answers 403 with AWS's XML SignatureDoesNotMatch
document, 502 with a proxy's HTML page, or 500 with bytes that are no text. Every place that
shows a failure (the run on the task page, the task's banner and status changes, the
dashboard's last error, the API's 409 and runs, Test connection) shows the one diagnosis of
lib/aws.py, never the answer's markup; the answer itself is kept, escaped and collapsed, in
the run's details and, masked, in the log.
"""

import html
import logging
import re

import pytest

from tasks_app.models import Connector, Job, Plan, Role, TaskConfig, TaskRun, TaskStatusChange
from tests.factories import PASSWORD, api_token, make_connector, make_team, token_client
from tests.hostile_aws import BAD_GATEWAY, BROKEN, SIGNATURE

pytestmark = pytest.mark.django_db

# (the stand-in's answer, words of the diagnosis, words of the raw answer kept in details)
CASES = {
    "signature-xml": (
        SIGNATURE,
        "The secret access key does not belong to this access key ID",
        "<Code>SignatureDoesNotMatch</Code>",
    ),
    "proxy-html": (
        BAD_GATEWAY,
        "No AWS answer to ecr:GetAuthorizationToken: HTTP 502 Bad Gateway with an HTML page",
        "<title>502 Bad Gateway</title>",
    ),
    "garbage": (
        BROKEN,
        "No AWS answer to ecr:GetAuthorizationToken: HTTP 500 Internal Server Error with a",
        "garbage {{{ <<not json>>",
    ),
}
UPSTREAM = ("<?xml", "<Error", "<html", "<title", "nginx", "not json", "Traceback")


@pytest.fixture
def task(db):
    team = make_team("Team A", alice=Role.ADMIN)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    return TaskConfig.objects.create(
        job=job, region="eu-west-1", connector=make_connector(team), description="the task"
    )


def _shown(page: str) -> str:
    """The page as a person reads it, without the collapsed run details ("AWS's answer")."""
    return re.sub(r'<details class="aws-answer">.*?</details>', "", page, flags=re.S)


def _assert_plain(text: str, diagnosis: str, *, whole_page: bool = False) -> None:
    """The diagnosis is there; no upstream markup, escaped or not, nor a stack. In a piece
    of text, no markup at all; in a whole page (whose own snippets hold <placeholders>),
    none of the answer's."""
    assert diagnosis in html.unescape(text)
    if not whole_page:
        assert "<" not in html.unescape(text)
        assert "xml" not in html.unescape(text).lower()
    for words in UPSTREAM:
        assert html.escape(words, quote=False) not in text  # shown as text
        if words not in ("<html", "<title"):  # the page's own
            assert words not in text  # or as markup


@pytest.mark.parametrize("case", CASES)
def test_a_failed_run_reads_the_same_plain_diagnosis_everywhere(
    client, task, hostile_aws, caplog, case
):
    answer, diagnosis, raw = CASES[case]
    hostile_aws.answer = answer
    client.login(username="alice", password=PASSWORD)

    with caplog.at_level(logging.WARNING, logger="ecrportal.aws"):
        client.post(f"/tasks/{task.id}/run/")

    run = TaskRun.objects.get(task=task)
    assert run.outcome == TaskRun.Outcome.FAILED
    assert diagnosis in run.error_message
    _assert_plain(run.error_message, diagnosis)
    # The raw answer: in the run's details (capped) and in the log.
    assert raw in run.aws_answer
    assert run.aws_answer.startswith(f"HTTP {answer[0]} ")
    assert "\x00" not in run.aws_answer  # escaped as \x00: PostgreSQL refuses NUL in text
    assert any(raw in record.getMessage() for record in caplog.records)

    task.refresh_from_db()
    _assert_plain(task.last_error, diagnosis)
    change = TaskStatusChange.objects.get(task=task)
    _assert_plain(change.error, diagnosis)  # what notifications and webhooks send

    page = client.get(f"/tasks/{task.id}/").content.decode()
    banner = re.search(r'<div class="outcome failing" role="status"><p>(.*?)</p>', page, re.S)
    _assert_plain(banner.group(1), diagnosis)
    _assert_plain(_shown(page), diagnosis, whole_page=True)
    details = re.search(r'<details class="aws-answer">(.*?)</details>', page, re.S).group(1)
    assert "AWS&#x27;s answer" in details or "AWS's answer" in details
    assert html.escape(raw, quote=False) in details  # escaped, never markup of the page

    dashboard = client.get("/").content.decode()
    row = next(row for row in dashboard.split("<tr") if ">the task</a>" in row)
    row = row.split("</tr>")[0]
    assert html.unescape(row).count(diagnosis[:50]) == 1  # the column shows 80 characters
    _assert_plain(row, diagnosis[:50], whole_page=True)

    runs_page = client.get("/runs/")
    if runs_page.status_code == 200:
        _assert_plain(_shown(runs_page.content.decode()), diagnosis[:100], whole_page=True)


@pytest.mark.parametrize("case", CASES)
def test_the_api_409_and_runs_give_the_diagnosis_and_keep_the_answer_apart(
    task, hostile_aws, case
):
    answer, diagnosis, raw = CASES[case]
    hostile_aws.answer = answer
    api = token_client(api_token(task.job.plan, task.job))

    run = api.post(f"/api/v1/tasks/{task.id}/run")
    assert run.status_code == 201, run.content
    _assert_plain(run.json()["error_message"], diagnosis)
    assert raw in run.json()["aws_answer"]

    served = api.get(f"/api/v1/tasks/{task.id}/variables")
    assert served.status_code == 409
    detail = served.json()["detail"]
    _assert_plain(detail, diagnosis)
    assert "<" not in detail


@pytest.mark.parametrize("case", CASES)
def test_test_connection_explains_without_the_answer(client, task, hostile_aws, case):
    answer, diagnosis, _ = CASES[case]
    hostile_aws.answer = answer
    client.login(username="alice", password=PASSWORD)
    connector = Connector.objects.get()

    page = client.post(
        f"/connectors/{connector.id}/test/", {"region": "eu-west-1"}
    ).content.decode()

    # Test connection calls STS first: an XML service, where the ECR runs above use JSON.
    expected = diagnosis.replace("ecr:GetAuthorizationToken", "sts:GetCallerIdentity")
    _assert_plain(page, expected, whole_page=True)
    connector.refresh_from_db()
    assert connector.last_test_ok is False
    _assert_plain(connector.last_test_message, expected)
