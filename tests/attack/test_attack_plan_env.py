"""GET /api/v1/plans/{key}/env?shell=…&job=…, attacked (issue 24).

The attacker: a CI job holding one job's API token (or a plan's), and a signed-in person of
another team. What they control: the plan key in the path, `job` and `shell` in the query,
and the order of requests (another team's token may have filled the per-process cache for
the key they ask). A job token reads its own job and its plan's result variables only, and
every refusal reads as for a plan or job that does not exist, so that no answer tells that
another team's plan key exists. The snippet is eval'd by a shell: nothing the caller sends
reaches it, and the names in it are plain identifiers.
"""

import re
import subprocess

import pytest
from rest_framework.test import APIClient

from tasks_app.models import Role
from tests.factories import (
    api_token,
    give_credential,
    make_connector,
    make_job,
    make_plan,
    make_task,
    make_team,
    token_client,
)

pytestmark = pytest.mark.django_db

MINE = "Sentinel-mine"
SIBLING = "Sentinel-sibling"  # a local task of another job of the same plan
THEIRS = "Sentinel-theirs"  # another team's plan


@pytest.fixture
def world(settings):
    settings.API_CACHE_SECONDS = 60  # what another token read stays in this process's cache
    team = make_team("Platform", ada=Role.ADMIN, vic=Role.VIEWER)
    other = make_team("Other", mallory=Role.EDITOR)
    connector = make_connector(team)
    plan = make_plan(team)
    build, deploy = make_job(plan), make_job(plan, key="DEPLOY", name="Deploy")
    give_credential(make_task(build, connector, namespace="mine.aws"), password=MINE)
    give_credential(make_task(deploy, connector, namespace="sib.aws"), password=SIBLING)
    second = make_plan(team, key="SECOND", name="Second")
    make_job(second)
    theirs = make_plan(other, key="THEIRS", name="Theirs")
    their_job = make_job(theirs)
    give_credential(
        make_task(their_job, make_connector(other), namespace="t.aws", scope="result"),
        password=THEIRS,
    )
    return {
        "attacker": token_client(api_token(plan, build)),
        "plan_token": token_client(api_token(plan)),
        "victim": token_client(api_token(theirs, their_job)),
    }


def _env(client, key, **query):
    query.setdefault("shell", "bash")
    return client.get(f"/api/v1/plans/{key}/env", query)


def _same(a, b) -> None:
    """Two refusals a caller cannot tell apart: status, content type, body."""
    assert a.status_code == b.status_code == 404
    assert a["Content-Type"] == b["Content-Type"]
    assert a.content == b.content


def test_a_job_token_reads_its_job_and_nothing_beside(world):
    mine = _env(world["attacker"], "WEB-BUILD", job="BUILD")
    assert mine.status_code == 200
    text = mine.content.decode()
    assert MINE in text
    assert SIBLING not in text
    assert THEIRS not in text


def test_another_job_of_the_plan_reads_as_no_such_job(world):
    for client in (world["attacker"], world["plan_token"]):
        _same(_env(client, "WEB-BUILD", job="DEPLOY"), _env(client, "WEB-BUILD", job="NOPE"))


def test_another_plan_of_the_team_reads_as_no_such_plan(world):
    _same(_env(world["attacker"], "SECOND"), _env(world["attacker"], "NOPE"))
    _same(_env(world["attacker"], "SECOND", job="BUILD"), _env(world["attacker"], "NOPE"))


@pytest.mark.parametrize("cached", [False, True])
def test_another_teams_plan_key_is_not_told_to_exist(world, cached):
    if cached:  # the victim's own job filled this process's cache for the key first
        assert _env(world["victim"], "THEIRS", job="BUILD").status_code == 200
    for query in ({}, {"job": "BUILD"}, {"job": "NOPE"}, {"shell": "nosuch"}):
        theirs = _env(world["attacker"], "THEIRS", **query)
        _same(theirs, _env(world["attacker"], "NO-SUCH-PLAN", **query))
        assert THEIRS not in theirs.content.decode()


def test_a_person_of_another_team_cannot_tell_a_plan_key_exists():
    """A signed-in editor of another team asks with its session: the plan endpoints answer
    as for a key that does not exist (they said "Not found." instead of "No such plan.")."""
    from django.contrib.auth import get_user_model

    team = make_team("Platform", ada=Role.ADMIN)
    make_team("Other", mallory=Role.EDITOR)
    make_plan(team, key="SECRET-PLAN")
    client = APIClient()
    client.force_login(get_user_model().objects.get(username="mallory"))
    for endpoint in ("env?shell=bash", "variables", "docker-config", "kubernetes-secret"):
        _same(
            client.get(f"/api/v1/plans/SECRET-PLAN/{endpoint}"),
            client.get(f"/api/v1/plans/NO-SUCH-PLAN/{endpoint}"),
        )


@pytest.mark.parametrize(
    "job", ["$(touch /tmp/pwned)", "`id`", "BUILD'; id; '", "BUILD\necho pwned", "../BUILD"]
)
def test_the_job_parameter_never_reaches_a_shell_or_the_answer(world, job):
    answer = _env(world["attacker"], "WEB-BUILD", job=job)
    assert answer.status_code in (400, 404)
    assert answer["Content-Type"].startswith("application/json")
    assert job not in answer.content.decode()
    assert MINE not in answer.content.decode()


@pytest.mark.parametrize("shell", ["bash;id", "bash\n", "BASH", "$(id)", ""])
def test_an_unknown_shell_is_refused_without_echo(world, shell):
    answer = _env(world["attacker"], "WEB-BUILD", job="BUILD", shell=shell)
    assert answer.status_code == 400
    assert answer.json()["detail"] == {"shell": ["Choose one of bash, powershell, cmd, dotenv."]}


def test_the_snippet_is_plain_assignments_that_bash_reads_back_exactly(world):
    text = _env(world["attacker"], "WEB-BUILD", job="BUILD").content.decode()
    lines = text.splitlines()
    assert lines
    for line in lines:
        assert re.fullmatch(r"export [A-Za-z_][A-Za-z0-9_]*='[^']*'", line), line
    script = text + 'printf %s "$bamboo_mine_aws_ecr_password"'
    read = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True)
    assert read.stdout == MINE


@pytest.mark.parametrize("namespace", ["a.b$(id)", "a;id", "a b", "a.`id`", "a\nb"])
def test_a_name_cannot_carry_shell_syntax(namespace):
    """Names come from the task's namespace, which the API refuses unless it is dotted
    identifiers (rules/task_settings.py)."""
    from django.contrib.auth import get_user_model

    team = make_team("Platform", ada=Role.ADMIN)
    task = make_task(make_job(make_plan(team)), make_connector(team))
    client = APIClient()
    client.force_login(get_user_model().objects.get(username="ada"))
    answer = client.patch(f"/api/v1/tasks/{task.id}", {"namespace": namespace}, format="json")
    assert answer.status_code == 400
    assert "namespace" in answer.json()["detail"]
    task.refresh_from_db()
    assert task.namespace == "custom.aws"
