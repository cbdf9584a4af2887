"""Plan and job pages show how to use the credentials they see, as the task page does
(issue 24): the shells, Kubernetes, Docker config and JSON, masked until an editor reveals
them, and only the tasks the plan or job sees (policy/visibility.py)."""

import subprocess

import pytest

from tasks_app.models import AuditEvent, Role
from tests.factories import (
    PASSWORD,
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

SHARED_PW = "Sentinel-Shared-Pw-41"
BUILD_PW = "Sentinel-Build-Pw-42"
TEST_PW = "Sentinel-Test-Pw-43"
TABS = ('id="tab-bash"', 'id="tab-powershell"', 'id="tab-cmd"')
FORMATS = ('id="tab-kubernetes"', 'id="tab-docker-config"')


@pytest.fixture
def world(db):
    """Plan WEB-BUILD: a result task (shared), a local task of BUILD, a local task of TEST."""
    team = make_team("Team A", alice=Role.EDITOR, vic=Role.VIEWER)
    make_team("Team B", bob=Role.ADMIN)
    connector = make_connector(team)
    plan = make_plan(team)
    build, test = make_job(plan), make_job(plan, key="TEST", name="Test")
    shared = make_task(build, connector, namespace="shared", scope="result")
    local = make_task(build, connector, namespace="build.local")
    other = make_task(test, connector, namespace="test.local", region="us-east-1")
    give_credential(shared, password=SHARED_PW)
    give_credential(
        local, password=BUILD_PW, endpoint="https://210987654321.dkr.ecr.eu-west-1.amazonaws.com"
    )
    give_credential(other, password=TEST_PW)
    return plan, build, test


def _page(client, username, url):
    client.login(username=username, password=PASSWORD)
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def test_a_viewer_sees_every_tab_on_the_plan_page_masked_and_no_reveal(client, world):
    plan, *_ = world
    page = _page(client, "vic", f"/plans/{plan.id}/")
    for tab in TABS + FORMATS:
        assert tab in page
    assert "http://127.0.0.1:8000/api/v1/plans/WEB-BUILD/env?shell=bash" in page
    assert (
        "http://127.0.0.1:8000/api/v1/plans/WEB-BUILD/kubernetes-secret?name=ecr-pull&amp;"
        "namespace=default" in page
    )
    assert "http://127.0.0.1:8000/api/v1/plans/WEB-BUILD/docker-config" in page
    # Result scope only: the plan sees "shared", neither job's local task.
    assert "export bamboo_shared_ecr_proxyEndpoint=" in page
    assert "build_local" not in page
    assert "test_local" not in page
    assert "export bamboo_shared_ecr_password=&#x27;********&#x27;" in page
    assert '<pre class="code" id="json">' in page
    for secret in (SHARED_PW, BUILD_PW, TEST_PW):
        assert secret not in page
    assert "Reveal values" not in page


def test_the_job_page_shows_its_own_and_the_plans_result_tasks(client, world):
    _, build, test = world
    page = _page(client, "vic", f"/jobs/{build.id}/")
    for tab in TABS + FORMATS:
        assert tab in page
    assert "/api/v1/plans/WEB-BUILD/env?job=BUILD&amp;shell=bash" in page
    assert "/api/v1/plans/WEB-BUILD/kubernetes-secret?job=BUILD&amp;name=ecr-pull" in page
    assert "/api/v1/plans/WEB-BUILD/docker-config?job=BUILD" in page
    # One fetch, then a login to each namespace's registry; a mapping per namespace.
    assert page.count("eval &quot;$(curl") == 1
    assert "$bamboo_shared_ecr_password" in page
    assert "$bamboo_build_local_ecr_password" in page
    assert "the task of namespace <code>build.local</code>" in page
    # Both registries in the credential helper's line.
    assert "210987654321.dkr.ecr.eu-west-1.amazonaws.com&quot;: &quot;ecrportal" in page
    assert "test_local" not in page
    assert BUILD_PW not in page
    assert SHARED_PW not in page

    other = _page(client, "vic", f"/jobs/{test.id}/")
    assert "test_local" in other
    assert "build_local" not in other


def test_an_editor_reveals_what_the_job_sees_audited_and_never_cached(client, world):
    plan, build, _ = world
    client.login(username="alice", password=PASSWORD)
    masked = client.get(f"/jobs/{build.id}/").content.decode()
    assert "Reveal values" in masked
    assert BUILD_PW not in masked

    response = client.post(f"/jobs/{build.id}/reveal/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    page = response.content.decode()
    assert f"export bamboo_build_local_ecr_password=&#x27;{BUILD_PW}&#x27;" in page
    assert SHARED_PW in page
    assert TEST_PW not in page  # another job's local task stays out of sight
    assert "Hide values" in page
    event = AuditEvent.objects.get(action="variables.revealed")
    assert event.summary == "Revealed the variables of job WEB-BUILD-BUILD"
    assert BUILD_PW not in str(event.__dict__)

    plan_page = client.post(f"/plans/{plan.id}/reveal/").content.decode()
    assert SHARED_PW in plan_page
    assert BUILD_PW not in plan_page


def test_viewers_and_outsiders_cannot_reveal_nor_see(client, world):
    plan, build, _ = world
    client.login(username="vic", password=PASSWORD)
    assert client.post(f"/jobs/{build.id}/reveal/").status_code == 403
    assert client.post(f"/plans/{plan.id}/reveal/").status_code == 403
    assert client.get(f"/plans/{plan.id}/reveal/").status_code == 405
    client.login(username="bob", password=PASSWORD)
    for url in (f"/plans/{plan.id}/", f"/jobs/{build.id}/"):
        assert client.get(url).status_code in (403, 404)
        assert client.post(url + "reveal/").status_code in (403, 404)
    assert not AuditEvent.objects.filter(action="variables.revealed").exists()


def test_revealing_with_a_task_without_credentials_says_why_and_shows_nothing(client, world):
    plan, build, _ = world
    make_task(build, namespace="late", scope="result", description="never run")
    client.login(username="alice", password=PASSWORD)
    response = client.post(f"/plans/{plan.id}/reveal/")
    assert response.status_code == 409
    page = response.content.decode()
    assert "The task \u201cnever run\u201d has not fetched credentials yet." in page
    assert SHARED_PW not in page
    assert "Reveal values" in page


def test_a_plan_without_visible_tasks_shows_no_tabs(client, world):
    plan, *_ = world
    empty = make_plan(plan.team, key="EMPTY", name="Empty")
    page = _page(client, "vic", f"/plans/{empty.id}/")
    assert "No result variables yet." in page
    assert 'id="tab-kubernetes"' not in page


def test_the_plan_env_endpoint_serves_what_the_ci_snippet_fetches(client, world, tmp_path):
    plan, build, _ = world
    raw = api_token(plan, build)
    api = token_client(raw)
    response = api.get("/api/v1/plans/WEB-BUILD/env", {"job": "BUILD", "shell": "bash"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Cache-Control"] == "no-store"
    env = subprocess.run(
        ["bash", "-c", response.content.decode() + 'printf %s "$bamboo_build_local_ecr_password"'],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    assert env == BUILD_PW
    assert TEST_PW not in response.content.decode()

    refused = api.get("/api/v1/plans/WEB-BUILD/env", {"job": "BUILD", "shell": "fish"})
    assert refused.status_code == 400
    assert refused.json()["detail"] == {"shell": ["Choose one of bash, powershell, cmd, dotenv."]}
    other_job = api.get("/api/v1/plans/WEB-BUILD/env", {"job": "TEST", "shell": "bash"})
    assert other_job.status_code == 404
    assert token_client().get("/api/v1/plans/WEB-BUILD/env?shell=bash").status_code == 401
    client.login(username="vic", password=PASSWORD)  # people: editors of the plan's team
    assert client.get("/api/v1/plans/WEB-BUILD/env?shell=bash").status_code == 403
