"""AWS's answer kept in a run (`TaskRun.aws_answer`), attacked (issue 24).

The attacker: whatever answers in AWS's place (a proxy, a firewall, a misconfigured or
compromised endpoint), and a member of another team who wants to read what it said. What
they control: every byte of the answer to a failed call (it may echo the request, with the
session token of the connector's role, or hold the connector's secret access key, HTML and
script, NUL bytes, megabytes), and task IDs. The answer is masked (lib/log_masking: every
secret the process decrypted or received), then capped at lib/aws.py ANSWER_LIMIT, so that
a secret across the cap is never kept in part (it was, before: the cap came first); it is
escaped in the task page's collapsed details, and never shown in the dashboard, the banner,
the task's last error or its status changes. The API returns it with a run only to who may
run the task.
"""

import html
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from tasks_app.identity.actor import Actor
from tasks_app.lib.aws import ANSWER_LIMIT
from tasks_app.models import Job, Plan, Role, TaskConfig, TaskRun, TaskStatusChange
from tasks_app.services.runs import task_run
from tests.factories import api_token, make_connector, make_team, token_client

pytestmark = pytest.mark.django_db

MARK = "Sentinel-upstream-words"
SCRIPT = "</pre></details><script>alert(1)</script><img src=x onerror=alert(2)>"


def _secret() -> str:
    """A connector's secret access key no other test has registered for masking."""
    return secrets.token_hex(20)  # 40 characters of [0-9a-f]


def _world(secret: str) -> dict:
    team = make_team("Platform", ada=Role.ADMIN)
    make_team("Other", mallory=Role.ADMIN)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(
        job=job,
        region="eu-west-1",
        connector=make_connector(team, secret_access_key=secret),
        description="the task",
    )
    return {"team": team, "task": task, "job": job, "plan": plan}


def _run(task) -> TaskRun:
    ada = get_user_model().objects.get(username="ada")
    return task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=Actor(user=ada))


def _pieces(secret: str, size: int = 12) -> list[str]:
    """Every part of the secret long enough to matter."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def _assert_no_part_of(secret: str, text: str) -> None:
    assert not any(piece in text for piece in _pieces(secret)), "a part of the secret is kept"


@pytest.mark.parametrize("offset", [0, ANSWER_LIMIT - 60, ANSWER_LIMIT - 20, ANSWER_LIMIT - 1])
def test_the_connectors_secret_in_an_answer_is_masked_even_across_the_cap(hostile_aws, offset):
    secret = _secret()
    world = _world(secret)
    prefix = len("HTTP 403 Forbidden\n")
    pad = b"y" * max(offset - prefix, 0)
    hostile_aws.answer = (403, "text/plain", pad + secret.encode() + b" " + b"z" * 9000)

    run = _run(world["task"])

    assert run.outcome == TaskRun.Outcome.FAILED
    _assert_no_part_of(secret, run.aws_answer)
    assert len(run.aws_answer) <= ANSWER_LIMIT + 100
    _assert_no_part_of(secret, TaskRun.objects.get(pk=run.pk).aws_answer)


class _EchoingProxy:
    """An 'ECR endpoint' that answers 403 with the session token the request carried,
    at a chosen offset, as a proxy that echoes requests might."""

    def __init__(self, offset: int):
        echo = self
        self.token = ""

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                echo.token = self.headers.get("X-Amz-Security-Token", "")
                body = b"y" * offset + echo.token.encode() + b"\n" + b"z" * 9000
                self.send_response(403)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("offset", [0, ANSWER_LIMIT - 200])
def test_a_roles_session_token_echoed_back_is_masked(aws_endpoint, settings, offset):
    """STS (moto) gives the role's session; the ECR endpoint echoes its token back."""
    proxy = _EchoingProxy(offset)
    settings.AWS_ENDPOINT_URLS = {"ecr": proxy.url}
    settings.AWS_MAX_ATTEMPTS = 1
    try:
        world = _world(_secret())
        connector = world["task"].connector
        connector.principal_type = "assumed_role"
        connector.role_arn = "arn:aws:iam::123456789012:role/ecr-push"
        connector.full_clean()
        connector.save()
        run = _run(TaskConfig.objects.get(pk=world["task"].pk))
    finally:
        proxy.close()
    assert len(proxy.token) > 100, "the proxy saw no session token"
    assert run.outcome == TaskRun.Outcome.FAILED
    _assert_no_part_of(proxy.token, run.aws_answer)


def test_markup_nul_and_megabytes_are_kept_escaped_capped_and_apart(hostile_aws):
    world = _world(_secret())
    body = (MARK + SCRIPT).encode() + b"\x00\x01\xff" + b"w" * 5_000_000
    hostile_aws.answer = (502, "text/html", body)
    client = Client()
    client.force_login(get_user_model().objects.get(username="ada"))

    assert client.post(f"/tasks/{world['task'].id}/run/").status_code == 302
    run = TaskRun.objects.get(task=world["task"])
    assert MARK in run.aws_answer
    assert "\x00" not in run.aws_answer
    assert "\\x00" in run.aws_answer
    assert len(run.aws_answer) <= ANSWER_LIMIT + 100
    assert run.aws_answer.endswith(f"{len(body)} bytes in all)")

    page = client.get(f"/tasks/{world['task'].id}/").content.decode()
    assert SCRIPT not in page
    assert "<script>alert" not in page
    details = page.split('<details class="aws-answer">', 1)[1].split("</details>", 1)[0]
    assert html.escape(SCRIPT, quote=True) in details or html.escape(SCRIPT) in details
    outside = page.replace(details, "")
    assert MARK not in outside  # not in the banner nor anywhere else on the page

    task = TaskConfig.objects.get(pk=world["task"].pk)
    assert MARK not in task.last_error
    assert all(MARK not in change.error for change in TaskStatusChange.objects.all())
    assert MARK not in run.error_message
    for page in ("/", "/runs/"):
        assert MARK not in client.get(page).content.decode(), page


def test_another_team_cannot_read_the_answer_through_the_api(hostile_aws):
    world = _world(_secret())
    hostile_aws.answer = (502, "text/html", MARK.encode())
    _run(world["task"])
    other_plan = Plan.objects.create(
        team=make_team("Third", tom=Role.ADMIN), key="THIRD", name="Third"
    )
    other_job = Job.objects.create(plan=other_plan, key="BUILD", name="Build")
    session = Client()
    session.force_login(get_user_model().objects.get(username="mallory"))
    viewer = make_team("Viewers", vic=Role.VIEWER)
    del viewer
    callers = {
        "another team's job token": token_client(api_token(other_plan, other_job)),
        "another team's admin": session,
    }
    unknown = "00000000-0000-4000-8000-000000000000"
    for who, client in callers.items():
        for path in ("run", "variables"):
            method = client.post if path == "run" else client.get
            theirs = method(f"/api/v1/tasks/{world['task'].id}/{path}")
            nobodys = method(f"/api/v1/tasks/{unknown}/{path}")
            assert theirs.status_code == nobodys.status_code == 404, (who, path)
            assert theirs.content == nobodys.content, (who, path)
        runs = client.get("/runs/")
        assert MARK not in runs.content.decode(), who
    assert TaskRun.objects.filter(task=world["task"]).count() == 1  # nobody ran it again


def test_a_viewer_of_the_team_gets_no_run_and_no_answer(hostile_aws):
    world = _world(_secret())
    hostile_aws.answer = (502, "text/html", MARK.encode())
    from tasks_app.models import Membership

    Membership.objects.create(
        team=world["team"], user=get_user_model().objects.create_user("vic"), role=Role.VIEWER
    )
    client = Client()
    client.force_login(get_user_model().objects.get(username="vic"))
    answer = client.post(f"/api/v1/tasks/{world['task'].id}/run")
    assert answer.status_code in (403, 404)
    assert MARK not in answer.content.decode()
    assert not TaskRun.objects.filter(task=world["task"]).exists()
