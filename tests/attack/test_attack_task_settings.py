"""The task settings surface, attacked (issue 22, item 5).

The attacker: a CI job holding an API token of the plan's job, which keeps reading the
task's credentials after the team restricted them (made the task pull-only, moved it to
another connector, account, region or registry). What it controls: its token, how often it
asks (every variables, env, docker-config and kubernetes-secret endpoint), and its timing:
a run may be fetching credentials under the old settings while a person changes them.
The team's editor changes the task as people do, through the configuration API (PATCH
/api/v1/tasks/<id>) or the task form; runs go through moto as in tests/services/test_refresh.py.

Before the fix, a task's credential was dropped only when its namespace changed, so a task
made pull-only kept serving its push token until it expired (up to 12 hours), and a run in
flight wrote what it had fetched under the old settings.
"""

import base64
import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils.timezone import now
from rest_framework.test import APIClient

from tasks_app.identity.actor import SYSTEM
from tasks_app.lib import aws
from tasks_app.models import Job, Plan, Role, TaskConfig, TaskRun, Variable
from tasks_app.services import claims, refresh
from tasks_app.services.plans import task_save
from tasks_app.services.run_results import credential_for, runs_deliver
from tasks_app.services.runs import task_run
from tests.factories import api_token, give_credential, make_connector, make_team, token_client
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db

PUSH_TOKEN = "Sentinel-push-token"  # the password the push-capable token holds
ROLE = "arn:aws:iam::123456789012:role/ecr-push"
OTHER_ROLE = "arn:aws:iam::210987654321:role/ecr-other"
REGISTRY = "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
FAR = now() + timedelta(days=3650)


@pytest.fixture
def world(settings):
    """A task of plan WEB-BUILD, job BUILD, serving a push-capable token for six hours,
    held by no one, due in ten years; the attacker's job token; the team's editor."""
    settings.API_CACHE_SECONDS = 0  # every read reaches the database (a cold web process)
    settings.ALLOW_HOST_CREDENTIALS = True
    team = make_team("Platform", ada=Role.ADMIN, alice=Role.EDITOR)
    team.host_credentials_allowed = True
    team.save()
    push = make_connector(team, principal_type="assumed_role", role_arn=ROLE)
    other = make_connector(
        team, name="other-ecr", principal_type="assumed_role", role_arn=OTHER_ROLE
    )
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    for key, value in (("aws.region", "eu-west-1"), ("aws.connector", str(push.id))):
        Variable.objects.create(team=team, plan=plan, key=key, value=value)
    task = TaskConfig(job=job, region="eu-west-1", connector=push, description="images")
    task.full_clean()
    task.save()
    give_credential(task, password=PUSH_TOKEN, endpoint=REGISTRY)
    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at=FAR, failures=3)
    task.refresh_from_db()
    editor = APIClient()
    editor.force_login(team.members.get(username="alice"))
    return {
        "team": team,
        "plan": plan,
        "job": job,
        "task": task,
        "push": push,
        "other": other,
        "editor": editor,
        "attacker": token_client(api_token(plan, job)),
    }


def _reads(world) -> dict:
    """What the attacker's token gets from every endpoint that serves the task."""
    task_id, client = world["task"].id, world["attacker"]
    return {
        path: client.get(f"/api/v1/{path}")
        for path in (
            f"tasks/{task_id}/variables",
            f"tasks/{task_id}/env?shell=bash",
            f"tasks/{task_id}/docker-config",
            f"tasks/{task_id}/kubernetes-secret",
            "plans/WEB-BUILD/variables?job=BUILD",
            "docker-config",
        )
    }


def _assert_serves_the_push_token(world) -> None:
    for path, response in _reads(world).items():
        assert response.status_code == 200, (path, response.content)


def _assert_serves_nothing(world) -> None:
    encoded = base64.b64encode(f"AWS:{PUSH_TOKEN}".encode()).decode()
    for path, response in _reads(world).items():
        body = response.content.decode()
        assert response.status_code == 409, (path, body)
        assert response.json()["error"] == "not_fetched", (path, body)
        assert "Sentinel" not in body, path  # neither the push token nor one in flight
        assert encoded not in body, path


def _assert_dropped_and_due(task_id) -> None:
    task = TaskConfig.objects.get(pk=task_id)
    assert (task.credential_id, task.expires_at) == (None, None)
    assert task.refresh_due_at is not None
    assert task.refresh_due_at <= now()
    assert task.failures == 0
    assert (task.lease_until, task.claim) == (None, None)


def _patch(world, change: dict):
    response = world["editor"].patch(f"/api/v1/tasks/{world['task'].id}", change, format="json")
    assert response.status_code == 200, response.json()
    return response


# (a) The team restricts the task; the attacker's token must not read the old token again.


def test_a_task_made_pull_only_never_serves_its_push_token_again(world):
    _assert_serves_the_push_token(world)
    # A worker holds the task (a claim, a lease) when the editor restricts it.
    TaskConfig.objects.filter(pk=world["task"].pk).update(
        lease_until=now() + timedelta(minutes=5), claim=uuid.uuid4()
    )
    _patch(world, {"access": "pull"})
    _assert_serves_nothing(world)
    _assert_dropped_and_due(world["task"].pk)
    assert TaskConfig.objects.get(pk=world["task"].pk).access == "pull"


def test_the_task_form_making_a_task_pull_only_drops_its_push_token_too(world, client):
    _assert_serves_the_push_token(world)
    client.force_login(world["team"].members.get(username="alice"))
    response = client.post(
        reverse("task_edit", args=[world["task"].id]),
        {
            "description": "images",
            "region_choice": "eu-west-1",
            "namespace": "custom.aws",
            "scope": "local",
            "credentials_source": "connector",
            "connector_choice": str(world["push"].id),
            "access": "pull",
        },
    )
    assert response.status_code == 302, response.context["form"].errors
    _assert_serves_nothing(world)
    _assert_dropped_and_due(world["task"].pk)


def test_the_push_token_is_gone_once_the_api_cache_window_has_passed(world, settings):
    """With the per-process cache on, the attacker's cached answer lives at most
    ECRPORTAL_API_CACHE_SECONDS, never until the token expires."""
    settings.API_CACHE_SECONDS = 1
    task_path = f"/api/v1/tasks/{world['task'].id}/variables"
    assert world["attacker"].get(task_path).status_code == 200  # now cached
    _patch(world, {"access": "pull"})
    wait_for(
        lambda: world["attacker"].get(task_path).status_code == 409,
        timeout=15,  # the cache time (1 s), on a loaded machine; the token lasts hours
        interval=0.1,
        what="the cached push token to be refused (409)",
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"access": "pull"}, id="access"),
        pytest.param("other-connector", id="connector"),
        pytest.param(
            {"connector": None, "connector_variable": "${bamboo.aws.connector}"},
            id="connector_variable",
        ),
        pytest.param({"region": "us-east-1"}, id="region"),
        pytest.param({"region_variable": "${bamboo.aws.region}"}, id="region_variable"),
        pytest.param({"registry_id": "111111111111"}, id="registry_id"),
        pytest.param(
            {"credentials_source": "host", "connector": None, "role_arn": ROLE},
            id="credentials_source",
        ),
    ],
)
def test_any_change_to_a_credential_setting_drops_what_the_task_serves(world, change):
    """Even a change that lands on the same effective values (a region variable whose value
    is the old region, a connector variable naming the old connector) drops the token."""
    if change == "other-connector":
        change = {"connector": str(world["other"].id)}
    _assert_serves_the_push_token(world)
    _patch(world, change)
    _assert_serves_nothing(world)
    _assert_dropped_and_due(world["task"].pk)


def test_a_new_role_arn_on_a_host_task_drops_what_it_serves(world):
    task = world["task"]
    task.credentials_source, task.connector, task.role_arn = "host", None, ROLE
    task_save(task=task, actor=SYSTEM)
    give_credential(task, password=PUSH_TOKEN, endpoint=REGISTRY)
    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at=FAR, failures=3)
    _assert_serves_the_push_token(world)
    _patch(world, {"role_arn": OTHER_ROLE})
    _assert_serves_nothing(world)
    _assert_dropped_and_due(task.pk)


# (b) The control: a change that does not touch the credentials keeps serving them.


def test_a_description_change_keeps_serving_and_keeps_the_schedule(world):
    _patch(world, {"description": "images, renamed", "access": "push_pull"})
    _assert_serves_the_push_token(world)
    task = TaskConfig.objects.get(pk=world["task"].pk)
    assert task.credential_id is not None
    assert (task.refresh_due_at, task.failures) == (FAR, 3)


# (c) The race: a run fetched under the old settings; the team restricted the task meanwhile.


def _restrict(task_id) -> None:
    """The editor makes the task pull-only (a fresh load, as a request would)."""
    fresh = TaskConfig.objects.select_related("job__plan__team", "connector").get(pk=task_id)
    fresh.access = TaskConfig.Access.PULL
    task_save(task=fresh, actor=SYSTEM)


def _assert_superseded(world, run: TaskRun) -> None:
    run.refresh_from_db()
    assert (run.outcome, run.error_class) == ("failed", "SettingsChanged")
    assert run.token_expires_at is None
    _assert_serves_nothing(world)
    _assert_dropped_and_due(world["task"].pk)


def test_a_run_that_fetched_under_the_old_settings_writes_nothing(world):
    stale = TaskConfig.objects.select_related("job__plan__team", "connector").get(
        pk=world["task"].pk
    )  # loaded by the run before the change
    run = TaskRun.objects.create(task=stale, trigger=TaskRun.Trigger.SCHEDULE)
    _restrict(stale.pk)
    fetched = aws.EcrAuthorization(
        token="QVdTOlNlbnRpbmVsLWluLWZsaWdodA==",  # AWS:Sentinel-in-flight
        username="AWS",
        password="Sentinel-in-flight",  # what AWS answered to the run
        expires_at=now() + timedelta(hours=12),
        proxy_endpoint=REGISTRY,
        request_id="req-in-flight",
    )
    served = runs_deliver(
        credential=credential_for(authorization=fetched, group="connector:push|eu-west-1"),
        runs=[(stale, run)],
    )
    assert served == 0
    _assert_superseded(world, run)


@pytest.fixture
def mid_call(monkeypatch):
    """mid_call(action): runs action once, while the portal waits for AWS's answer to
    GetAuthorizationToken (the run has resolved its task and called STS already)."""
    pending: list = []

    def during(model=None, **kwargs):
        if model.name == "GetAuthorizationToken" and pending:
            pending.pop()()

    monkeypatch.setattr(aws, "EVENT_HANDLERS", [*aws.EVENT_HANDLERS, ("before-call", during)])
    return pending.append


@pytest.mark.parametrize("path", ["run now", "scheduled refresh"])
def test_a_restriction_made_while_aws_answers_is_not_undone_by_the_run(
    world, aws_endpoint, ecr_expiry, mid_call, path
):
    task_id = world["task"].pk
    mid_call(lambda: _patch(world, {"access": "pull"}))
    if path == "run now":
        task = TaskConfig.objects.select_related("job__plan__team", "connector").get(pk=task_id)
        run = task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)
    else:
        TaskConfig.objects.filter(pk=task_id).update(refresh_due_at=now() - timedelta(minutes=1))
        (claim,) = claims.refresh_claim()
        assert refresh.refresh_group(claim_id=claim.id) == 0
        run = TaskRun.objects.get(task_id=task_id)
    _assert_superseded(world, run)


@pytest.mark.django_db(transaction=True)
def test_a_worker_in_another_thread_loses_the_race_to_the_restriction(
    world, aws_endpoint, ecr_expiry, monkeypatch
):
    """A worker (its own thread and database connection) holds the claim and waits for
    AWS while the editor, in a request, makes the task pull-only."""
    task_id = world["task"].pk
    TaskConfig.objects.filter(pk=task_id).update(refresh_due_at=now() - timedelta(minutes=1))
    (claim,) = claims.refresh_claim()
    in_call, restricted = threading.Event(), threading.Event()

    def during(model=None, **kwargs):
        if model.name == "GetAuthorizationToken":
            in_call.set()
            assert restricted.wait(30), "the editor never restricted the task"

    monkeypatch.setattr(aws, "EVENT_HANDLERS", [*aws.EVENT_HANDLERS, ("before-call", during)])
    outcome: dict[str, object] = {}

    def worker():
        try:
            outcome["refreshed"] = refresh.refresh_group(claim_id=claim.id)
        except BaseException as e:  # reported by the main thread
            outcome["error"] = e
        finally:
            connection.close()

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    assert in_call.wait(30), "the worker never called AWS"
    _patch(world, {"access": "pull"})
    restricted.set()
    thread.join(30)
    assert not thread.is_alive()
    assert outcome == {"refreshed": 0}
    _assert_superseded(world, TaskRun.objects.get(task_id=task_id))
