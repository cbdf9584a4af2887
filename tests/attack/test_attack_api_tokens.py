"""The API token surface, attacked (issue 22).

The attacker: a CI job that holds one team's token (a plan token, or a job token) and
wants another team's credentials, another job's local ones, or to trigger AWS calls; and
anyone who found a token that was revoked, expired, or belongs to a deleted plan. What
they control: the Authorization header (and any other place a token could be put), the
task IDs, plan keys and job keys in the URLs, the HTTP method, and the order of requests,
so that answers another job fetched are in the per-process cache first. What guards it:
BearerTokenAuthentication (tasks_app/api/authentication.py), token_authenticate with its cached
lookup (tasks_app/services/tokens.py), task_visible and scope_within
(tasks_app/policy/visibility.py), require_task_access and require_token_may_run
(tasks_app/policy/access.py), and task_served / plan_served, which decide again on every cache hit
(tasks_app/services/delivery.py).
"""

import hashlib
import logging
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils.timezone import now
from rest_framework.test import APIClient

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.models import ApiToken, AuditEvent, Job, Plan, Role, TaskConfig, TaskRun
from tasks_app.models import tokens as token_models
from tasks_app.services.plans import job_delete, plan_delete
from tasks_app.services.tokens import token_hash, token_revoke
from tests.factories import api_token, give_credential, make_connector, make_team, token_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _cache_on(settings):
    # Long enough that nothing in a test outlives it by accident: what is refused must be
    # refused because the portal decided so, not because an entry timed out.
    settings.API_CACHE_SECONDS = 60


@pytest.fixture
def world():
    """Team Platform: plan WEB-BUILD with jobs BUILD and DEPLOY; BUILD has a local and a
    result-scoped task, DEPLOY a local one, all with fresh credentials. Team Intruders:
    plan EVIL-CI with job RUN and a task of its own. One token of each kind."""
    team = make_team("Platform", alice=Role.ADMIN)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    build = Job.objects.create(plan=plan, key="BUILD", name="Build", stage=1)
    deploy = Job.objects.create(plan=plan, key="DEPLOY", name="Deploy", stage=2)
    tasks = {
        "local": TaskConfig.objects.create(
            job=build, region="eu-west-1", connector=connector, namespace="build.local"
        ),
        "result": TaskConfig.objects.create(
            job=build, region="eu-west-1", connector=connector, namespace="shared", scope="result"
        ),
        "deploy_local": TaskConfig.objects.create(
            job=deploy, region="eu-west-1", connector=connector, namespace="deploy.local"
        ),
    }
    for task in tasks.values():
        give_credential(task)

    intruders = make_team("Intruders", mallory=Role.ADMIN)
    evil_plan = Plan.objects.create(team=intruders, key="EVIL-CI", name="Evil")
    evil_job = Job.objects.create(plan=evil_plan, key="RUN", name="Run")
    own = TaskConfig.objects.create(
        job=evil_job, region="eu-west-1", connector=make_connector(intruders), namespace="own"
    )
    give_credential(own)
    return {
        "team": team,
        "plan": plan,
        "build": build,
        "deploy": deploy,
        **tasks,
        "own": own,
        "build_token": api_token(plan, build),
        "deploy_token": api_token(plan, deploy),
        "plan_token": api_token(plan),
        "evil_token": api_token(evil_plan, evil_job),
        "evil_plan_token": api_token(evil_plan),
    }


def _task_urls(task_id) -> list[tuple[str, str]]:
    return [
        ("get", reverse("api_task_variables", args=[task_id])),
        ("get", reverse("api_task_env", args=[task_id]) + "?shell=bash"),
        ("get", reverse("api_task_docker_config", args=[task_id])),
        ("get", reverse("api_task_kubernetes_secret", args=[task_id])),
    ]


def _plan_urls(plan_key, job=None) -> list[str]:
    query = f"?job={job}" if job else ""
    return [
        reverse(name, args=[plan_key]) + query
        for name in ("api_plan_variables", "api_plan_docker_config", "api_plan_kubernetes_secret")
    ]


def _answer(response) -> tuple[int, bytes, str]:
    return response.status_code, response.content, response.get("Content-Type", "")


def _warm(world):
    """Platform's own jobs fetch everything first: every answer is in this process's cache."""
    for who, tasks in (("build_token", ("local", "result")), ("deploy_token", ("deploy_local",))):
        client = token_client(world[who])
        for name in tasks:
            for method, url in _task_urls(world[name].id):
                assert getattr(client, method)(url).status_code == 200, url
    for url in _plan_urls("WEB-BUILD", "BUILD"):
        assert token_client(world["build_token"]).get(url).status_code == 200
    for url in _plan_urls("WEB-BUILD"):
        assert token_client(world["plan_token"]).get(url).status_code == 200


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_another_teams_task_answers_exactly_like_an_unknown_one(world, cache):
    if cache == "warm":
        _warm(world)
    intruder = token_client(world["evil_token"])
    unknown = uuid.uuid4()
    for name in ("local", "result", "deploy_local"):
        for (method, url), (_, nowhere) in zip(
            _task_urls(world[name].id), _task_urls(unknown), strict=True
        ):
            theirs = _answer(getattr(intruder, method)(url))
            absent = _answer(getattr(intruder, method)(nowhere))
            assert theirs == absent, url
            assert theirs[0] == 404
            assert b"pw-" not in theirs[1]


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_running_another_teams_task_answers_exactly_like_an_unknown_one(world, cache, aws_calls):
    if cache == "warm":
        _warm(world)
    intruder = token_client(world["evil_token"])
    nowhere = _answer(intruder.post(reverse("api_task_run", args=[uuid.uuid4()])))
    for name in ("local", "result", "deploy_local"):
        theirs = _answer(intruder.post(reverse("api_task_run", args=[world[name].id])))
        assert theirs[0] == 404
        assert theirs == nowhere, name
    assert not TaskRun.objects.exists()
    assert aws_calls == []


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_another_teams_plan_key_answers_exactly_like_an_unknown_one(world, cache):
    if cache == "warm":
        _warm(world)
    for token in ("evil_token", "evil_plan_token"):
        intruder = token_client(world[token])
        for job in (None, "BUILD", "DEPLOY", "NOSUCH"):
            for theirs_url, absent_url in zip(
                _plan_urls("WEB-BUILD", job), _plan_urls("NONE-SUCH", job), strict=True
            ):
                theirs = _answer(intruder.get(theirs_url))
                absent = _answer(intruder.get(absent_url))
                assert theirs == absent, (token, theirs_url)
                assert theirs[0] == 404
                assert b"pw-" not in theirs[1]


def test_a_warm_cache_shows_no_job_another_jobs_local_task(world):
    _warm(world)
    local = world["local"].id
    for token in ("deploy_token", "plan_token"):
        client = token_client(world[token])
        for method, url in _task_urls(local):
            # The task exists and is cached; for this token it is as unknown as any other.
            answer = _answer(getattr(client, method)(url))
            elsewhere = url.replace(str(local), str(uuid.uuid4()))
            assert answer == _answer(getattr(client, method)(elsewhere))
            assert answer[0] == 404
        assert client.post(reverse("api_task_run", args=[local])).status_code == 404
        for url in _plan_urls("WEB-BUILD", "BUILD"):
            response = client.get(url)
            assert response.status_code == 404, (token, url)
            assert b"pw-build.local" not in response.content
    # The job token's own answer without ?job= is the plan's result variables only.
    body = token_client(world["deploy_token"]).get(_plan_urls("WEB-BUILD")[0]).json()
    assert not any(key.startswith("build.local") for key in body["variables"])
    assert not TaskRun.objects.exists()


def test_a_token_that_expires_while_its_lookup_is_cached_is_refused_from_that_moment(
    world, monkeypatch
):
    raw = world["build_token"]
    expiry = now() + timedelta(minutes=10)
    ApiToken.objects.filter(token_hash=token_hash(raw)).update(expires_at=expiry)
    client = token_client(raw)
    task_url = reverse("api_task_variables", args=[world["local"].id])
    assert client.get(task_url).status_code == 200  # the lookup is cached for a minute now
    assert token_hash(raw) in caches.tokens

    monkeypatch.setattr(token_models, "now", lambda: expiry + timedelta(seconds=1))
    for url in (task_url, reverse("api_token_docker_config"), _plan_urls("WEB-BUILD", "BUILD")[0]):
        response = client.get(url)
        assert response.status_code == 401, url
        assert response.json()["error"] == "unauthenticated"
        assert b"pw-" not in response.content


def test_a_token_revoked_in_this_process_is_refused_at_once_on_every_endpoint(world):
    raw = world["build_token"]
    client = token_client(raw)
    own = [reverse("api_token_docker_config"), reverse("api_token_kubernetes_secret")]
    for url in own:
        assert client.get(url).status_code == 200
    _warm(world)

    token = ApiToken.objects.get(token_hash=token_hash(raw))
    token_revoke(token=token, actor=Actor(user=world["team"].members.get(), address="192.0.2.1"))

    urls = [url for method, url in _task_urls(world["local"].id) if method == "get"]
    urls += _plan_urls("WEB-BUILD", "BUILD") + own
    for url in urls:
        response = client.get(url)
        assert response.status_code == 401, url
        assert b"pw-" not in response.content
    assert client.post(reverse("api_task_run", args=[world["local"].id])).status_code == 401
    assert not TaskRun.objects.exists()


@pytest.mark.parametrize("deleted", ["plan", "job"])
def test_a_token_of_a_deleted_plan_or_job_is_refused_at_once_in_this_process(world, deleted):
    raw = world["build_token"]
    client = token_client(raw)
    assert client.get(reverse("api_task_variables", args=[world["result"].id])).status_code == 200
    actor = Actor(user=world["team"].members.get(), address="192.0.2.1")
    if deleted == "plan":
        plan_delete(plan=world["plan"], actor=actor)
    else:
        job_delete(job=world["build"], actor=actor)
    assert not ApiToken.objects.filter(token_hash=token_hash(raw)).exists()

    urls = [
        reverse("api_task_variables", args=[world["result"].id]),  # its answer is cached
        reverse("api_token_docker_config"),
        reverse("api_token_kubernetes_secret"),
        _plan_urls("WEB-BUILD")[0],
    ]
    # As a web server answers: a 500 is an answer here, not an exception.
    caller = APIClient(raise_request_exception=False)
    caller.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    statuses = {url: caller.get(url).status_code for url in urls}
    assert statuses == dict.fromkeys(urls, 401)


@pytest.mark.parametrize(
    "where",
    [
        {"query": "token"},
        {"query": "access_token"},
        {"query": "api_token"},
        {"query": "bearer"},
        {"header": "HTTP_X_API_TOKEN"},
        {"header": "HTTP_X_AUTH_TOKEN"},
        {"header": "HTTP_PRIVATE_TOKEN"},
        {"cookie": "token"},
        {"scheme": "Token"},
        {"scheme": "Basic"},
        {"scheme": "ecrp"},
    ],
    ids=lambda w: "-".join(f"{k}:{v}" for k, v in w.items()),
)
def test_a_token_anywhere_but_the_bearer_header_is_ignored(world, where):
    raw = world["build_token"]
    client = token_client()
    url = reverse("api_task_variables", args=[world["local"].id])
    meta = {}
    if "query" in where:
        url += f"?{where['query']}={raw}"
    if "header" in where:
        meta[where["header"]] = raw
    if "cookie" in where:
        client.cookies[where["cookie"]] = raw
    if "scheme" in where:
        value = raw
        if where["scheme"] == "Basic":
            import base64

            value = base64.b64encode(f"{raw}:".encode()).decode()
        meta["HTTP_AUTHORIZATION"] = f"{where['scheme']} {value}"
    response = client.get(url, **meta)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthenticated"
    assert b"pw-" not in response.content
    assert ApiToken.objects.get(token_hash=token_hash(raw)).last_used_at is None


@pytest.mark.parametrize(
    "header",
    [
        "Bearer",
        "Bearer ",
        "bearer",
        "Bearer {raw} {raw}",
        "Bearer {raw},Bearer {raw}",
        "Bearer {raw}, {raw}",
        "Bearer  ecrp_",
        "Bearer ecrp_",
        "Bearer ecrp_" + "A" * 10_000,
        "Bearer " + "ecrp_\u00e9\u00ff\u00fe",
        "Bearer ecrp_\u00c3(",
        "Bearer ecrp_%00",
        "Bearer ecrp_../../etc/passwd",
        "Bearer ecrp_' OR '1'='1",
        "Bearer {hint}",
        "Bearer {hash}",
        "Bearer ecrp_{hash}",
        "Bearer {raw_upper}",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "Bearer " + "x." * 3000,
    ],
    ids=lambda h: h[:40],
)
def test_malformed_or_guessed_authorization_answers_401_json_never_500(world, header, caplog):
    raw = world["build_token"]
    token = ApiToken.objects.get(token_hash=token_hash(raw))
    value = header.format(
        raw=raw, hint=token.hint, hash=token.token_hash, raw_upper=raw[:5] + raw[5:].swapcase()
    )
    response = token_client().get(
        reverse("api_task_variables", args=[world["local"].id]), HTTP_AUTHORIZATION=value
    )
    assert response.status_code == 401, response.content[:200]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "unauthenticated"
    assert raw not in str(body)
    assert b"pw-" not in response.content
    assert "Traceback" not in caplog.text
    token.refresh_from_db()
    assert token.last_used_at is None


def test_a_read_only_token_cannot_start_a_run_by_method_tricks(world, aws_calls):
    """A plan token, and a job token on another job's result task: reading is allowed, running
    is not, however the request is dressed up."""
    run = reverse("api_task_run", args=[world["result"].id])
    variables = reverse("api_task_variables", args=[world["result"].id])
    for who in ("plan_token", "deploy_token"):
        client = token_client(world[who])
        assert client.get(variables).status_code == 200
        assert client.post(run).status_code == 403
        assert client.post(run, HTTP_X_HTTP_METHOD_OVERRIDE="GET").status_code == 403
        assert client.get(run, HTTP_X_HTTP_METHOD_OVERRIDE="POST").status_code == 405
        for method in ("put", "patch", "delete"):
            assert getattr(client, method)(run).status_code in (403, 405), (who, method)
            assert getattr(client, method)(variables).status_code == 405, (who, method)
    # Nor may another team's job token, whose own job is beside the point.
    assert token_client(world["evil_token"]).post(run).status_code == 404
    assert not TaskRun.objects.exists()
    assert aws_calls == []


def test_a_token_is_in_no_log_audit_event_or_column_whatever_it_is_used_for(world, client, caplog):
    alice = world["team"].members.get()
    client.force_login(alice)
    with caplog.at_level(logging.DEBUG):
        page = client.post(
            reverse("token_create"),
            {"name": "sentinel-ci", "binding": f"job:{world['build'].id}"},
        )
        raw = page.context["raw"]
        assert raw in page.content.decode()  # shown once, on this answer
        assert "no-store" in page["Cache-Control"]
        api = token_client(raw)
        local = world["local"].id
        api.get(reverse("api_task_variables", args=[local]), REMOTE_ADDR="198.51.100.4")
        api.get(reverse("api_task_variables", args=[uuid.uuid4()]))
        api.post(reverse("api_task_run", args=[world["result"].id]))  # 403
        token_client().get(reverse("api_task_variables", args=[local]) + f"?token={raw}")
        token = ApiToken.objects.get(token_hash=token_hash(raw))
        client.post(reverse("token_revoke", args=[token.id]))
        api.get(reverse("api_task_variables", args=[local]))  # 401 now
        listing = client.get(reverse("token_list")).content.decode()

    secret_part = raw[len(token.hint) :]
    assert raw not in listing
    assert secret_part not in caplog.text
    assert token.hint in listing
    events = list(AuditEvent.objects.all())
    assert {"token.created", "token.revoked"} <= {e.action for e in events}
    for event in events:
        assert secret_part not in f"{event.actor_name} {event.summary} {event.changes}"
    # The row, read as the database holds it: the SHA-256 and the hint, nothing more.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiToken._meta.db_table}")  # noqa: S608 - our own table
        rows = cursor.fetchall()
    assert len(rows) == 6
    stored = " ".join(str(value) for row in rows for value in row)
    assert secret_part not in stored
    assert secret_part[:12] not in stored
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.hint == raw[:11]
