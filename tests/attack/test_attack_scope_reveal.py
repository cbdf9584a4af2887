"""Reveal on the plan and job pages, attacked (issue 24).

The attacker: a viewer of the plan's team, an editor of another team, a member of a team a
connector of the plan's team is shared with, and another site that makes a signed-in
editor's browser send a request (an <img>, a link, a form without the CSRF token). What
they control: plan and job IDs in `plans/<id>/reveal/` and `jobs/<id>/reveal/`, the method,
the CSRF token. The values a reveal shows come from services/delivery.py `scope_revealed`
through services/variables.py `scope_tasks`: a job sees its own local tasks and its plan's
result tasks, never another job's local tasks nor another plan's result tasks.
"""

import pytest
from django.test import Client
from django.urls import reverse

from tasks_app.models import AuditEvent, Role, TaskConfig
from tests.factories import (
    give_credential,
    make_connector,
    make_job,
    make_plan,
    make_task,
    make_team,
)

pytestmark = pytest.mark.django_db

OWN_LOCAL = "Sentinel-own-local"
PLAN_RESULT = "Sentinel-plan-result"
SIBLING_LOCAL = "Sentinel-sibling-local"  # another job's local task of the same plan
OTHER_PLAN_RESULT = "Sentinel-other-plan-result"  # the same team, another plan
OTHER_TEAM_RESULT = "Sentinel-other-team-result"  # another team, a plan of the same key
SENTINELS = (OWN_LOCAL, PLAN_RESULT, SIBLING_LOCAL, OTHER_PLAN_RESULT, OTHER_TEAM_RESULT)


@pytest.fixture
def world():
    team = make_team("Platform", ada=Role.ADMIN, ed=Role.EDITOR, vic=Role.VIEWER)
    other = make_team("Other", mallory=Role.EDITOR)
    sharer = make_team("Sharer", sam=Role.ADMIN)
    connector = make_connector(team)
    connector.shared_with.add(sharer)
    plan = make_plan(team)
    build, deploy = make_job(plan), make_job(plan, key="DEPLOY", name="Deploy")
    own = make_task(build, connector, namespace="own.aws")
    result = make_task(deploy, connector, namespace="result.aws", scope="result")
    sibling = make_task(deploy, connector, namespace="sibling.aws")
    other_plan = make_plan(team, key="OTHER", name="Other")
    other_plan_result = make_task(
        make_job(other_plan), connector, namespace="elsewhere.aws", scope="result"
    )
    foreign = make_plan(other, key="WEB-BUILD2", name="Web")
    foreign_result = make_task(
        make_job(foreign), make_connector(other), namespace="foreign.aws", scope="result"
    )
    for task, password in (
        (own, OWN_LOCAL),
        (result, PLAN_RESULT),
        (sibling, SIBLING_LOCAL),
        (other_plan_result, OTHER_PLAN_RESULT),
        (foreign_result, OTHER_TEAM_RESULT),
    ):
        give_credential(task, password=password)
    return {"team": team, "plan": plan, "build": build, "deploy": deploy, "own": own}


def _as(username) -> Client:
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def _urls(world):
    return {
        "plan": reverse("plan_reveal", args=[world["plan"].id]),
        "job": reverse("job_reveal", args=[world["build"].id]),
    }


def _reveals() -> int:
    return AuditEvent.objects.filter(action="variables.revealed").count()


@pytest.mark.parametrize(
    ("who", "status"),
    [("vic", 403), ("mallory", 404), ("sam", 404)],  # viewer; other team; shared connector
)
def test_only_editors_of_the_plans_team_reveal(world, who, status):
    client = _as(who)
    for url in _urls(world).values():
        answer = client.post(url)
        assert answer.status_code == status, (who, url)
        body = answer.content.decode()
        assert not any(sentinel in body for sentinel in SENTINELS), (who, url)
    assert _reveals() == 0


def test_another_teams_answer_is_the_same_as_for_an_unknown_id(world):
    client = _as("mallory")
    unknown = "00000000-0000-4000-8000-000000000000"
    for name, url in _urls(world).items():
        missing = reverse(f"{name}_reveal", args=[unknown])
        assert client.post(url).status_code == client.post(missing).status_code == 404


@pytest.mark.parametrize("method", ["get", "head", "put", "delete"])
def test_only_a_post_reveals(world, method):
    """A link or an <img> on another site makes a GET: it must show nothing."""
    client = _as("ada")
    for url in _urls(world).values():
        answer = getattr(client, method)(url)
        assert answer.status_code == 405, (method, url)
        assert not any(sentinel in answer.content.decode() for sentinel in SENTINELS)
    assert _reveals() == 0


def test_a_post_without_the_csrf_token_is_refused(world):
    from django.contrib.auth import get_user_model

    client = Client(enforce_csrf_checks=True)
    client.force_login(get_user_model().objects.get(username="ed"))
    for url in _urls(world).values():
        answer = client.post(url)
        assert answer.status_code == 403
        assert not any(sentinel in answer.content.decode() for sentinel in SENTINELS)
    assert _reveals() == 0


def test_a_job_reveals_its_own_and_its_plans_results_and_nothing_else(world):
    client = _as("ed")
    answer = client.post(_urls(world)["job"])
    body = answer.content.decode()
    assert answer.status_code == 200
    assert OWN_LOCAL in body
    assert PLAN_RESULT in body
    for leaked in (SIBLING_LOCAL, OTHER_PLAN_RESULT, OTHER_TEAM_RESULT):
        assert leaked not in body, leaked
    assert answer["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get(action="variables.revealed")
    assert (event.actor.username, event.object_id) == ("ed", str(world["build"].id))
    assert "WEB-BUILD-BUILD" in event.summary
    assert not any(sentinel in event.summary + str(event.changes) for sentinel in SENTINELS)


def test_a_plan_reveals_its_result_variables_only(world):
    client = _as("ed")
    answer = client.post(_urls(world)["plan"])
    body = answer.content.decode()
    assert answer.status_code == 200
    assert PLAN_RESULT in body
    for leaked in (OWN_LOCAL, SIBLING_LOCAL, OTHER_PLAN_RESULT, OTHER_TEAM_RESULT):
        assert leaked not in body, leaked
    assert answer["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get(action="variables.revealed")
    assert (event.object_type, event.object_id) == ("plan", str(world["plan"].id))


def test_the_unrevealed_pages_show_no_value(world):
    client = _as("ed")
    for page in (
        reverse("plan_detail", args=[world["plan"].id]),
        reverse("job_detail", args=[world["build"].id]),
    ):
        body = client.get(page).content.decode()
        assert not any(sentinel in body for sentinel in SENTINELS), page


def test_a_disabled_task_is_left_out_and_reveals_nothing(world):
    TaskConfig.objects.filter(pk=world["own"].pk).update(enabled=False)
    answer = _as("ed").post(_urls(world)["job"])
    body = answer.content.decode()
    assert answer.status_code == 200
    assert OWN_LOCAL not in body
    assert PLAN_RESULT in body


def test_a_task_without_credentials_stops_the_reveal_with_a_reason_and_no_audit(world):
    TaskConfig.objects.filter(pk=world["own"].pk).update(
        credential=None, last_error="<script>alert(1)</script>"
    )
    answer = _as("ed").post(_urls(world)["job"])
    body = answer.content.decode()
    assert answer.status_code == 409
    assert "has not fetched credentials yet" in body
    assert "<script>alert(1)</script>" not in body  # the last error, escaped
    assert not any(sentinel in body for sentinel in SENTINELS)
    assert _reveals() == 0
