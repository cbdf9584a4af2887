"""Credentials as registry clients read them (issue 16): Docker config.json and Kubernetes
pull secrets, for a task, a plan or job, and a token's own binding."""

import base64
import json
from datetime import timedelta

import pytest
import yaml

from tasks_app.models import Job, Plan, Role, Scope, TaskConfig
from tests.factories import (
    api_token,
    give_credential,
    make_connector,
    make_team,
    token_client,
)

pytestmark = pytest.mark.django_db

EU = "https://111111111111.dkr.ecr.eu-west-1.amazonaws.com"
US = "https://222222222222.dkr.ecr.us-east-1.amazonaws.com"


@pytest.fixture
def world(db):
    team = make_team("Platform", ada=Role.ADMIN)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    build = Job.objects.create(plan=plan, key="BUILD", name="Build")
    deploy = Job.objects.create(plan=plan, key="DEPLOY", name="Deploy")

    def task(job, namespace, scope, endpoint, password, region="eu-west-1"):
        made = TaskConfig.objects.create(
            job=job, region=region, connector=connector, namespace=namespace, scope=scope
        )
        give_credential(made, password=password, endpoint=endpoint)
        return made

    tasks = {
        "eu": task(build, "eu", Scope.RESULT, EU, "Sentinel-pw-eu"),
        "us": task(build, "us", Scope.LOCAL, US, "Sentinel-pw-us", "us-east-1"),
        "deploy": task(deploy, "dep", Scope.LOCAL, EU, "Sentinel-pw-eu"),
    }
    return team, plan, build, deploy, tasks


def _auth(password: str) -> str:
    return base64.b64encode(f"AWS:{password}".encode()).decode()


def test_a_task_answers_its_registry_login_as_a_docker_config(world):
    *_, plan, build, _, tasks = world
    client = token_client(api_token(plan, build))
    response = client.get(f"/api/v1/tasks/{tasks['us'].id}/docker-config")
    assert response.status_code == 200
    assert response.json() == {
        "auths": {
            "222222222222.dkr.ecr.us-east-1.amazonaws.com": {"auth": _auth("Sentinel-pw-us")}
        }
    }
    assert response["Cache-Control"] == "no-store"


def test_a_job_token_gets_every_registry_it_may_see_in_one_document(world):
    _, plan, build, deploy, _tasks = world
    job_token = token_client(api_token(plan, build))
    auths = job_token.get("/api/v1/plans/WEB-BUILD/docker-config?job=BUILD").json()["auths"]
    assert auths == {
        "111111111111.dkr.ecr.eu-west-1.amazonaws.com": {"auth": _auth("Sentinel-pw-eu")},
        "222222222222.dkr.ecr.us-east-1.amazonaws.com": {"auth": _auth("Sentinel-pw-us")},
    }
    # Its own binding, without naming plan or job: what the credential helper asks.
    assert job_token.get("/api/v1/docker-config").json()["auths"] == auths
    # The plan's token sees the result-scoped task only.
    plan_token = token_client(api_token(plan))
    assert list(plan_token.get("/api/v1/docker-config").json()["auths"]) == [
        "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
    ]
    # Another job's token does not see BUILD's local task, and may not name BUILD.
    other = token_client(api_token(plan, deploy))
    assert other.get("/api/v1/plans/WEB-BUILD/docker-config?job=BUILD").status_code == 404


def test_an_expired_task_makes_the_answer_409_as_for_variables(world):
    _, plan, build, _, tasks = world
    give_credential(tasks["us"], expires_in=timedelta(seconds=-1), endpoint=US)
    client = token_client(api_token(plan, build))
    response = client.get("/api/v1/plans/WEB-BUILD/docker-config?job=BUILD")
    assert response.status_code == 409
    assert response.json()["error"] == "expired"
    assert "Sentinel" not in response.content.decode()


def test_a_plan_with_nothing_visible_is_404_json(world):
    team, *_ = world
    empty = Plan.objects.create(team=team, key="EMPTY", name="Empty")
    client = token_client(api_token(empty))
    for path in ("/api/v1/plans/EMPTY/docker-config", "/api/v1/plans/EMPTY/kubernetes-secret"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json() == {
            "error": "not_found",
            "detail": "No task with credentials is visible here.",
        }


def test_the_kubernetes_secret_is_yaml_or_json_and_holds_the_docker_config(world):
    _, plan, build, _, tasks = world
    client = token_client(api_token(plan, build))
    response = client.get(
        f"/api/v1/tasks/{tasks['eu'].id}/kubernetes-secret?name=regcred&namespace=ci"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/yaml; charset=utf-8"
    secret = yaml.safe_load(response.content)
    assert secret["kind"] == "Secret"
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    assert secret["metadata"]["name"] == "regcred"
    assert secret["metadata"]["namespace"] == "ci"
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config == {
        "auths": {
            "111111111111.dkr.ecr.eu-west-1.amazonaws.com": {"auth": _auth("Sentinel-pw-eu")}
        }
    }
    as_json = client.get(
        f"/api/v1/tasks/{tasks['eu'].id}/kubernetes-secret", HTTP_ACCEPT="application/json"
    )
    assert as_json["Content-Type"] == "application/json; charset=utf-8"
    assert json.loads(as_json.content)["metadata"] == {
        "name": "ecr-pull",
        "labels": {"app.kubernetes.io/managed-by": "ecr-portal"},
    }


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("name=Reg_Cred", "name", "The name must be a DNS-1123 label"),
        ("name=-x", "name", "The name must be a DNS-1123 label"),
        ("namespace=" + "n" * 64, "namespace", "The namespace is 64 characters"),
    ],
)
def test_bad_names_are_400_json_without_secrets(world, query, field, message):
    _, plan, build, _, tasks = world
    client = token_client(api_token(plan, build))
    response = client.get(f"/api/v1/tasks/{tasks['eu'].id}/kubernetes-secret?{query}")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert body["detail"][field][0].startswith(message)
    assert "Sentinel" not in response.content.decode()


def test_people_name_the_plan_and_the_token_path_says_so(world, client):
    team, _plan, *_ = world
    client.force_login(team.members.get())
    response = client.get("/api/v1/docker-config")
    assert response.status_code == 400
    assert "/api/v1/plans/{key}/docker-config" in response.json()["detail"][0]
    assert client.get("/api/v1/plans/WEB-BUILD/docker-config").status_code == 200


def test_fifty_tasks_of_one_group_decrypt_once(world, monkeypatch, django_assert_max_num_queries):
    from tasks_app.lib import crypto

    _team, plan, build, _, tasks = world
    credential = TaskConfig.objects.get(pk=tasks["eu"].pk).credential
    TaskConfig.objects.bulk_create(
        TaskConfig(
            job=build,
            region="eu-west-1",
            connector=tasks["eu"].connector,
            namespace=f"more{i}",
            scope=Scope.RESULT,
            credential=credential,
            last_run_ok=True,
        )
        for i in range(47)
    )
    calls = []
    real = crypto.decrypt
    monkeypatch.setattr(crypto, "decrypt", lambda *a, **k: calls.append(1) or real(*a, **k))
    client = token_client(api_token(plan))
    with django_assert_max_num_queries(6):
        response = client.get("/api/v1/plans/WEB-BUILD/docker-config")
    assert response.status_code == 200
    assert len(calls) == 1  # 48 result tasks, one credential


def test_the_task_page_has_kubernetes_and_docker_config_tabs(world, client):
    team, *_, tasks = world
    client.force_login(team.members.get())
    page = client.get(f"/tasks/{tasks['us'].id}/").content.decode()
    task_id = tasks["us"].id
    assert 'id="tab-kubernetes"' in page
    assert 'id="tab-docker-config"' in page
    assert (
        f"http://127.0.0.1:8000/api/v1/tasks/{task_id}/kubernetes-secret?name=ecr-pull&amp;"
        "namespace=default" in page
    )
    assert "| kubectl apply -f -" in page
    assert f"/api/v1/tasks/{task_id}/docker-config" in page
    assert "/downloads/docker-credential-ecrportal" in page
    assert "{&quot;credHelpers&quot;: {&quot;222222222222.dkr.ecr.us-east-1.amazonaws.com" in page


@pytest.mark.django_db(transaction=True)
def test_the_docker_config_snippet_runs_in_bash(world, live_server, tmp_path):
    import subprocess

    from tasks_app.formats.snippets import docker_config_snippet

    _, plan, build, _, tasks = world
    snippet = docker_config_snippet(
        config_url=f"{live_server.url}/api/v1/tasks/{tasks['us'].id}/docker-config",
        download_url=f"{live_server.url}/downloads/docker-credential-ecrportal",
        hosts=["h"],
    )
    script = snippet.split("\n\n")[0] + '\ncat "$REGISTRY_AUTH_FILE"\n'
    out = subprocess.run(
        ["bash", "-e"],
        input=script,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ECRPORTAL_TOKEN": api_token(plan, build)},
        timeout=30,
        check=True,
    ).stdout
    assert json.loads(out)["auths"]["222222222222.dkr.ecr.us-east-1.amazonaws.com"] == {
        "auth": _auth("Sentinel-pw-us")
    }
