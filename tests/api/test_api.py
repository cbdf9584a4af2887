"""API v1 (SPEC §8.2, §8.4): who sees what, errors, 409 for credentials that cannot be served."""

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from django.urls import reverse
from django.utils.timezone import now
from rest_framework.test import APIClient

from tasks_app.identity.actor import Actor
from tasks_app.models import (
    ApiToken,
    AuditEvent,
    Credential,
    Job,
    Plan,
    Role,
    TaskConfig,
    TaskRun,
)
from tasks_app.rules.generated_variables import generated_keys
from tasks_app.services.tokens import token_hash
from tests.factories import api_token, give_credential, make_connector, make_team, token_client
from tests.helpers import wait_for

pytestmark = pytest.mark.django_db


def _actor(user):
    return Actor(user=user, address="192.0.2.9")


def _token(plan, job=None, **fields) -> str:
    return api_token(plan, job, expires_at=fields.get("expires_at"))


def _results(task, expires_in=timedelta(hours=6)):
    give_credential(task, expires_in=expires_in)


@pytest.fixture
def world(db):
    team = make_team("Platform", alice=Role.EDITOR, vic=Role.VIEWER)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    build = Job.objects.create(plan=plan, key="BUILD", name="Build", stage=1)
    deploy = Job.objects.create(plan=plan, key="DEPLOY", name="Deploy", stage=2)
    local = TaskConfig.objects.create(
        job=build, region="eu-west-1", connector=connector, namespace="build.local"
    )
    result = TaskConfig.objects.create(
        job=build, region="eu-west-1", connector=connector, namespace="shared", scope="result"
    )
    deploy_local = TaskConfig.objects.create(
        job=deploy, region="eu-west-1", connector=connector, namespace="deploy.local"
    )
    for task in (local, result, deploy_local):
        _results(task)
    other_plan = Plan.objects.create(team=team, key="API-BUILD", name="API")
    return {
        "team": team,
        "plan": plan,
        "build": build,
        "deploy": deploy,
        "local": local,
        "result": result,
        "deploy_local": deploy_local,
        "other_plan": other_plan,
    }


_client = token_client


def _keys(response):
    return sorted(response.json()["variables"])


# --- the token matrix -------------------------------------------------------------------


def test_a_job_token_sees_its_local_and_the_plans_result_variables(world):
    client = _client(_token(world["plan"], world["build"]))
    url = reverse("api_plan_variables", args=["WEB-BUILD"])
    response = client.get(url + "?job=BUILD")
    assert response.status_code == 200
    assert _keys(response) == sorted(generated_keys("build.local") + generated_keys("shared"))
    assert response.json()["variables"]["build.local.ecr.password"] == "pw-build.local"
    assert response["Cache-Control"] == "no-store"
    # Its own tasks, and the plan's result task; not another job's local task.
    for task, status in (("local", 200), ("result", 200), ("deploy_local", 404)):
        r = client.get(reverse("api_task_variables", args=[world[task].id]))
        assert r.status_code == status, task
    assert client.get(url + "?job=DEPLOY").status_code == 404


def test_a_plan_token_sees_result_variables_only(world):
    client = _client(_token(world["plan"]))
    url = reverse("api_plan_variables", args=["WEB-BUILD"])
    assert _keys(client.get(url)) == sorted(generated_keys("shared"))
    assert client.get(url + "?job=BUILD").status_code == 404
    assert client.get(reverse("api_task_variables", args=[world["result"].id])).status_code == 200
    assert client.get(reverse("api_task_variables", args=[world["local"].id])).status_code == 404


def test_another_plans_token_sees_nothing(world):
    client = _client(_token(world["other_plan"]))
    assert client.get(reverse("api_plan_variables", args=["WEB-BUILD"])).status_code == 404
    for task in ("local", "result", "deploy_local"):
        url = reverse("api_task_variables", args=[world[task].id])
        assert client.get(url).status_code == 404
        assert (
            client.get(reverse("api_task_env", args=[world[task].id]) + "?shell=bash").status_code
            == 404
        )
        assert client.post(reverse("api_task_run", args=[world[task].id])).status_code == 404
    assert not TaskRun.objects.exists()


@pytest.mark.parametrize("state", ["revoked", "expired", "unknown", "malformed", "none"])
def test_revoked_expired_unknown_or_missing_tokens_get_401(world, state):
    raw = _token(world["plan"], world["build"])
    token = ApiToken.objects.get(token_hash=token_hash(raw))
    if state == "revoked":
        token.revoked_at = now()
    elif state == "expired":
        token.expires_at = now() - timedelta(seconds=1)
    token.save()
    header = {
        "revoked": raw,
        "expired": raw,
        "unknown": raw[:-2] + "xx",
        "malformed": "not-a-token",
        "none": None,
    }[state]
    client = _client(header)
    response = client.get(reverse("api_task_variables", args=[world["local"].id]))
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="ecrportal"'
    assert "pw-" not in response.content.decode()


def test_token_use_is_recorded(world):
    raw = _token(world["plan"], world["build"])
    _client(raw).get(
        reverse("api_task_variables", args=[world["local"].id]), REMOTE_ADDR="198.51.100.4"
    )
    token = ApiToken.objects.get(token_hash=token_hash(raw))
    assert token.last_used_at is not None
    assert token.last_used_from == "198.51.100.4"


# --- what people get through the API ----------------------------------------------------


def test_editors_read_through_the_session_and_are_audited_viewers_are_not_allowed(world):
    client = APIClient()
    client.force_login(world["team"].members.get(username="vic"))
    url = reverse("api_task_variables", args=[world["local"].id])
    assert client.get(url).status_code == 403
    client.force_login(world["team"].members.get(username="alice"))
    assert client.get(url).status_code == 200
    assert AuditEvent.objects.filter(action="variables.read", actor_name="alice").count() == 1


# --- env snippets -------------------------------------------------------------------------


def test_env_answers_a_snippet_for_each_shell(world):
    client = _client(_token(world["plan"], world["build"]))
    url = reverse("api_task_env", args=[world["local"].id])
    bash = client.get(url + "?shell=bash")
    assert bash["Content-Type"] == "text/plain; charset=utf-8"
    lines = bash.content.decode().splitlines(keepends=True)
    assert len(lines) == 7  # the task's seven variables, and nothing of other tasks
    assert all(line.startswith("export bamboo_build_local_ecr_") for line in lines)
    assert "export bamboo_build_local_ecr_username='AWS'\n" in lines
    assert "export bamboo_build_local_ecr_password='pw-build.local'\n" in lines
    assert (
        "$Env:bamboo_build_local_ecr_username = 'AWS'"
        in client.get(url + "?shell=powershell").content.decode()
    )
    assert (
        'set "bamboo_build_local_ecr_username=AWS"'
        in client.get(url + "?shell=cmd").content.decode()
    )
    assert (
        "bamboo_build_local_ecr_username='AWS'"
        in client.get(url + "?shell=dotenv").content.decode()
    )
    bad = client.get(url + "?shell=fish")
    assert bad.status_code == 400
    assert bad.json() == {
        "error": "invalid",
        "detail": {"shell": ["Choose one of bash, powershell, cmd, dotenv."]},
    }


# --- 409 from every delivery path ------------------------------------------------------


def _expire(task):
    Credential.objects.filter(tasks=task).update(expires_at=now() - timedelta(minutes=1))
    TaskConfig.objects.filter(pk=task.pk).update(last_error="AWS is throttling.")


def test_expired_credentials_answer_409_from_every_api_path(world):
    _expire(world["result"])
    client = _client(_token(world["plan"], world["build"]))
    responses = [
        client.get(reverse("api_task_variables", args=[world["result"].id])),
        client.get(reverse("api_task_env", args=[world["result"].id]) + "?shell=bash"),
        client.get(reverse("api_plan_variables", args=["WEB-BUILD"])),
        client.get(reverse("api_plan_variables", args=["WEB-BUILD"]) + "?job=BUILD"),
    ]
    for response in responses:
        assert response.status_code == 409
        body = json.loads(response.content)
        assert body["error"] == "expired"
        assert "expired at" in body["detail"]
        assert "Last error: AWS is throttling." in body["detail"]
        assert "pw-shared" not in response.content.decode()


def test_never_fetched_and_disabled_tasks_answer_409(world):
    TaskConfig.objects.filter(pk=world["local"].pk).update(credential=None)
    client = _client(_token(world["plan"], world["build"]))
    response = client.get(reverse("api_task_variables", args=[world["local"].id]))
    assert response.status_code == 409
    assert response.json()["error"] == "not_fetched"

    TaskConfig.objects.filter(pk=world["result"].pk).update(enabled=False)
    response = client.get(reverse("api_task_variables", args=[world["result"].id]))
    assert (response.status_code, response.json()["error"]) == (409, "disabled")
    # A disabled task is out of the plan's view rather than blocking it.
    plan_view = client.get(reverse("api_plan_variables", args=["WEB-BUILD"]))
    assert plan_view.status_code == 200
    assert plan_view.json()["variables"] == {}


def test_expired_credentials_answer_409_on_the_task_page(client, world):
    _expire(world["local"])
    client.force_login(world["team"].members.get(username="alice"))
    response = client.post(reverse("task_reveal", args=[world["local"].id]))
    assert response.status_code == 409
    assert "expired at" in response.content.decode()
    assert "pw-build.local" not in response.content.decode()
    assert not AuditEvent.objects.filter(action="variables.revealed").exists()


# --- run now --------------------------------------------------------------------------------


def test_run_now_through_the_api(world, aws_endpoint, ecr_expiry):
    client = _client(_token(world["plan"], world["build"]))
    response = client.post(reverse("api_task_run", args=[world["local"].id]))
    assert response.status_code == 201
    body = response.json()
    assert (body["trigger"], body["outcome"], body["region"]) == ("api", "succeeded", "eu-west-1")
    run = TaskRun.objects.get()
    assert run.actor is None  # a CI job, not a person
    assert client.get(reverse("api_task_run", args=[world["local"].id])).status_code == 405


def test_a_tokens_run_names_the_token_in_runs_as_in_the_audit_log(
    client, world, aws_endpoint, ecr_expiry
):
    """Issue 24: Runs said "scheduler" where the audit log named the token."""
    raw = _token(world["plan"], world["build"])
    _client(raw).post(reverse("api_task_run", args=[world["local"].id]))
    run = TaskRun.objects.get()
    event = AuditEvent.objects.get(action="task.run")
    hint = ApiToken.objects.get(token_hash=token_hash(raw)).hint
    assert run.by == event.actor_name == f"token:{hint} (ci)"
    client.force_login(world["team"].members.get(username="alice"))
    for page in (reverse("run_list"), reverse("task_detail", args=[world["local"].id])):
        html = client.get(page).content.decode()
        assert f'<td data-label="By">token:{hint} (ci)</td>' in html
        assert ">scheduler</td>" not in html


def test_a_token_runs_only_the_tasks_of_its_own_job(world, aws_endpoint, aws_calls):
    """Reading a result task of another job is right; triggering its AWS calls is not."""
    deploy_token = _client(_token(world["plan"], world["deploy"]))
    url = reverse("api_task_run", args=[world["result"].id])  # BUILD's result-scope task
    assert (
        deploy_token.get(reverse("api_task_variables", args=[world["result"].id])).status_code
        == 200
    )
    response = deploy_token.post(url)
    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": "This token runs only the tasks of its own job; this task belongs to job "
        "WEB-BUILD-BUILD.",
    }
    plan_token = _client(_token(world["plan"]))
    response = plan_token.post(url)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("A plan token reads variables; it runs no task.")
    assert not TaskRun.objects.exists()
    assert aws_calls == []


# --- reveal -----------------------------------------------------------------------------------


def test_reveal_needs_an_editor_and_a_post_and_is_audited(client, world):
    url = reverse("task_reveal", args=[world["local"].id])
    detail = reverse("task_detail", args=[world["local"].id])
    client.force_login(world["team"].members.get(username="vic"))
    page = client.get(detail).content.decode()
    assert "pw-build.local" not in page
    assert "Reveal values" not in page
    assert client.post(url).status_code == 403

    client.force_login(world["team"].members.get(username="alice"))
    assert "pw-build.local" not in client.get(detail).content.decode()
    assert client.get(url).status_code == 405
    response = client.post(url)
    assert response.status_code == 200
    assert "pw-build.local" in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    event = AuditEvent.objects.get(action="variables.revealed")
    assert event.actor_name == "alice"


# --- tokens in the UI ---------------------------------------------------------------------------


def test_a_token_is_shown_once_and_stored_hashed(client, world):
    client.force_login(world["team"].members.get(username="alice"))
    response = client.post(
        reverse("token_create"),
        {"name": "web ci", "binding": f"job:{world['build'].id}", "expires_in_days": "30"},
    )
    raw = response.context["raw"]
    assert raw.startswith("ecrp_")
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get()
    assert token.token_hash == token_hash(raw)
    assert raw not in str(list(ApiToken.objects.values()))
    assert (token.job, token.plan) == (world["build"], world["plan"])
    assert raw not in client.get(reverse("token_list")).content.decode()
    assert AuditEvent.objects.filter(action="token.created").exists()

    client.post(reverse("token_revoke", args=[token.id]))
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(action="token.revoked").exists()
    assert (
        _client(raw).get(reverse("api_task_variables", args=[world["local"].id])).status_code
        == 401
    )


def test_viewers_cannot_create_or_revoke_tokens(client, world):
    raw = _token(world["plan"])
    token = ApiToken.objects.get(token_hash=token_hash(raw))
    client.force_login(world["team"].members.get(username="vic"))
    assert client.get(reverse("token_create")).status_code == 403
    assert client.post(reverse("token_revoke", args=[token.id])).status_code == 403


# --- the schema ---------------------------------------------------------------------------------


def test_the_openapi_schema_validates_and_documents_every_endpoint(world):
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    paths = set(schema["paths"])
    assert {
        "/api/v1/tasks/{task_id}/variables",
        "/api/v1/tasks/{task_id}/env",
        "/api/v1/tasks/{task_id}/run",
        "/api/v1/plans/{plan_key}/variables",
    } <= paths
    assert schema["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"

    client = _client(_token(world["plan"], world["build"]))
    served = client.get(reverse("api_schema"))
    assert served.status_code == 200
    assert set(json.loads(served.content)["paths"]) == paths
    assert "openapi" in yaml.safe_load(client.get(reverse("api_schema") + "?format=yaml").content)

    # Every documented operation answers with one of its documented statuses: the
    # credential paths for a job token, the configuration paths for an editor.
    editor = APIClient()
    editor.force_login(world["team"].members.get(username="alice"))
    connector = world["local"].connector
    variable = world["plan"].variables.create(team=world["team"], key="aws.region", value="x")
    ids = {
        "task_id": world["local"].id,
        "plan_key": "WEB-BUILD",
        "key": "WEB-BUILD",
        "/connectors/": connector.id,
        "/jobs/": world["deploy"].id,
        "/tasks/": world["deploy_local"].id,
        "/variables/": variable.id,
    }
    for path, operations in schema["paths"].items():
        prefix = next((p for p in ids if p.startswith("/") and p in path + "/"), None)
        url = path.replace("{id}", str(ids[prefix])) if prefix else path.format(**ids)
        caller = client if "{task_id}" in path or "{plan_key}" in path else editor
        for method in ("get", "post", "put", "patch", "delete"):
            if method not in operations:
                continue
            query = "?shell=bash" if path.endswith("/env") else ""
            response = getattr(caller, method)(url + query, {}, format="json")
            assert str(response.status_code) in operations[method]["responses"], (method, path)


# --- the token path's per-process cache -----------------------------------------------------


@pytest.mark.parametrize("path", ["api_task_variables", "api_task_env"])
def test_a_cache_miss_costs_two_queries_and_one_decryption(
    world, settings, monkeypatch, django_assert_num_queries, path
):
    from tasks_app.lib import caches, crypto

    decrypted = []
    real = crypto.decrypt
    monkeypatch.setattr(crypto, "decrypt", lambda *a, **k: decrypted.append(1) or real(*a, **k))
    settings.API_CACHE_SECONDS = 30
    client = _client(_token(world["plan"], world["build"]))
    url = reverse(path, args=[world["local"].id]) + ("?shell=bash" if "env" in path else "")
    assert client.get(url).status_code == 200  # the first use also records it (a write)
    for _ in range(3):
        caches.caches_clear()
        decrypted.clear()
        with django_assert_num_queries(2):  # the token, the task with its credential
            assert client.get(url).status_code == 200
        assert len(decrypted) == 1
    with django_assert_num_queries(0):  # and a hit costs none
        assert client.get(url).status_code == 200


def test_the_cache_never_serves_a_value_past_its_expiry(world, settings):
    settings.API_CACHE_SECONDS = 30
    client = _client(_token(world["plan"], world["build"]))
    url = reverse("api_task_variables", args=[world["local"].id])
    expires_at = now() + timedelta(seconds=3)
    Credential.objects.filter(tasks=world["local"]).update(expires_at=expires_at)
    assert client.get(url).status_code == 200  # now cached, for 30 s
    wait_for(lambda: now() > expires_at, timeout=10, interval=0.05, what="the expiry to pass")
    response = client.get(url)
    assert response.status_code == 409
    assert response.json()["error"] == "expired"


def test_a_revocation_elsewhere_takes_effect_within_the_cache_time(world, settings):
    settings.API_CACHE_SECONDS = 3
    raw = _token(world["plan"], world["build"])
    client = _client(raw)
    url = reverse("api_task_variables", args=[world["local"].id])
    assert client.get(url).status_code == 200
    cached_by = time.monotonic()  # the lookup was stored before this moment
    # Revoked by another web process: this one still holds the lookup, briefly.
    ApiToken.objects.filter(token_hash=token_hash(raw)).update(revoked_at=now())
    assert client.get(url).status_code == 200
    # Once the cache time has passed since the lookup was stored, the revocation is seen.
    wait_for(
        lambda: time.monotonic() >= cached_by + 3, timeout=10, interval=0.05, what="3 s to pass"
    )
    assert client.get(url).status_code == 401


def test_a_revocation_in_this_process_takes_effect_at_once(world, settings, client):
    settings.API_CACHE_SECONDS = 30
    raw = _token(world["plan"], world["build"])
    url = reverse("api_task_variables", args=[world["local"].id])
    assert _client(raw).get(url).status_code == 200
    client.force_login(world["team"].members.get(username="alice"))
    client.post(
        reverse("token_revoke", args=[ApiToken.objects.get(token_hash=token_hash(raw)).id])
    )
    assert _client(raw).get(url).status_code == 401


@pytest.mark.parametrize("status", [None, "ok", "failing"])
@pytest.mark.parametrize(
    "expires_at",
    [
        None,
        datetime(2026, 11, 28, 11, 44, 9, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC),
    ],
)
def test_the_variables_body_is_what_its_serializer_gives(expires_at, status):
    """The views write the body without building the serializer; the schema is the
    serializer's, so both must agree."""
    from tasks_app.api.variables import VariablesSerializer, variables_body

    variables = {"custom.aws.ecr.username": "AWS", "custom.aws.ecr.password": "p'\"\\ü"}
    body = {"variables": variables, "expires_at": expires_at}
    if status is not None:
        body["status"] = status
    assert variables_body(variables=variables, expires_at=expires_at, status=status) == dict(
        VariablesSerializer(body).data
    )
