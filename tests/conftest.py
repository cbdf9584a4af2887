import os
import shutil
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model

from tasks_app.models import Membership, Role, Team
from tests.helpers import ARTIFACTS, require

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _test_settings(settings):
    # No collectstatic before tests: serve static files from the apps' folders.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    # A fast hasher for users made in this process. Child processes keep the real ones.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


def make_user(username: str, *, password: str = PASSWORD, **fields):
    fields.setdefault("email", f"{username}@example.com")
    return get_user_model().objects.create_user(username=username, password=password, **fields)


def make_team(name: str, **members: Role) -> Team:
    team = Team.objects.create(name=name, slug=name.lower().replace(" ", "-"))
    for username, role in members.items():
        Membership.objects.create(team=team, user=make_user(username), role=role)
    return team


@pytest.fixture
def alice(db):
    """A team admin of team A."""
    team = make_team("Team A", alice=Role.ADMIN)
    return team.members.get()


@pytest.fixture
def team_a(alice):
    return Team.objects.get(name="Team A")


@pytest.fixture
def team_b(db):
    return make_team("Team B", bob=Role.ADMIN, bea=Role.VIEWER)


@pytest.fixture
def redis_url():
    """A Redis server for broker tests, emptied first. Skips (or fails) without one."""
    import redis

    url = django_settings.CELERY_BROKER_URL
    if urlsplit(url).scheme not in ("redis", "rediss"):
        url = os.environ.get("ECRPORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        require(False, f"Redis is not reachable at {url} ({e.__class__.__name__})")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright. Never downloads a browser."""
    require(
        shutil.which(CHROMIUM) is not None,
        f"Chromium is not installed at {CHROMIUM} (apt-get install chromium chromium-driver)",
    )
    # Playwright's sync API runs an event loop in this thread; the Django ORM
    # calls made by the tests themselves are still synchronous.
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    yield page
    screenshots = ARTIFACTS / "screenshots"
    screenshots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshots / f"{request.node.name}-final.png"), full_page=True)
    context.close()


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Every per-process cache (tasks_app/lib/caches.py) empty before and after each test."""
    from tasks_app.lib import caches

    caches.caches_clear()
    yield
    caches.caches_clear()


@pytest.fixture(scope="session")
def moto_server():
    """moto's AWS stand-in as a real HTTP server on 127.0.0.1."""
    import logging

    from moto.server import ThreadedMotoServer

    from tests.helpers import free_port

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def aws_endpoint(moto_server, settings, monkeypatch):
    """Points the portal at the moto server (ECRPORTAL_AWS_ENDPOINT_URL), with a clean state.

    The host credential chain finds its credentials in the environment, as on
    a host with AWS_ACCESS_KEY_ID set.
    """
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST"))
    settings.AWS_ENDPOINT_URL = moto_server
    settings.AWS_ENDPOINT_URLS = {}
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", HOST_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host/secret/key/for/tests/only/0000000000")
    return moto_server


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS call the portal makes: operation, API parameters, headers as signed."""
    from tasks_app.lib import aws

    calls = []

    def record(params=None, model=None, **kwargs):
        operation = f"{model.service_model.endpoint_prefix}:{model.name}"
        calls.append({"operation": operation, "params": dict(params)})

    def sent(request=None, **kwargs):
        calls[-1]["headers"] = {
            k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()
        }

    monkeypatch.setattr(
        aws,
        "EVENT_HANDLERS",
        [*aws.EVENT_HANDLERS, ("before-parameter-build", record), ("before-send", sent)],
    )
    return calls


@pytest.fixture
def aws_failure(monkeypatch):
    """aws_failure("api.ecr:GetAuthorizationToken", "AccessDeniedException", status=400):
    AWS answers that error (None: answers normally again)."""
    from botocore.awsrequest import AWSResponse

    from tasks_app.lib import aws

    failures = {}

    def answer(model=None, **kwargs):
        code, status = failures.get(
            f"{model.service_model.endpoint_prefix}:{model.name}", (None, 0)
        )
        if code is None:
            return None
        parsed = {
            "Error": {"Code": code, "Message": f"Injected {code}"},
            "ResponseMetadata": {"RequestId": "req-injected-1", "HTTPStatusCode": status},
        }
        return AWSResponse("https://injected.invalid/", status, {}, None), parsed

    monkeypatch.setattr(aws, "EVENT_HANDLERS", [*aws.EVENT_HANDLERS, ("before-call", answer)])

    def fail(operation: str, code: str | None, status: int = 400):
        failures[operation] = (code, status)

    return fail


HOST_ACCESS_KEY_ID = "AKIAHOSTCHAIN0000001"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def make_connector(team, **fields):
    from tasks_app.models import Connector

    fields.setdefault("name", "prod-ecr")
    fields.setdefault("access_key_id", "AKIAIOSFODNN7EXAMPLE")
    fields.setdefault("secret_access_key", SECRET)
    connector = Connector(team=team, **fields)
    connector.full_clean()
    connector.save()
    connector.refresh_from_db()
    return connector


@pytest.fixture
def ecr_expiry(monkeypatch):
    """moto's ECR tokens expire on 2015-01-01; this gives them AWS's 12 hours instead.

    Returns a function to set another expiry (a datetime) for later calls.
    """
    from datetime import UTC, datetime, timedelta

    from tasks_app.lib import aws

    expiry = {"at": None}

    def rewrite(parsed=None, model=None, **kwargs):
        if model.name == "GetAuthorizationToken" and "authorizationData" in parsed:
            # AWS answers whole seconds.
            at = expiry["at"] or (datetime.now(UTC) + timedelta(hours=12)).replace(microsecond=0)
            for data in parsed["authorizationData"]:
                data["expiresAt"] = at

    monkeypatch.setattr(aws, "EVENT_HANDLERS", [*aws.EVENT_HANDLERS, ("after-call", rewrite)])

    def set_expiry(at):
        expiry["at"] = at

    return set_expiry


@pytest.fixture
def webhook_receiver(tmp_path, settings):
    """A real HTTPS receiver on 127.0.0.1 that the portal trusts and may reach."""
    from tests.webhook_receiver import WebhookReceiver

    receiver = WebhookReceiver(tmp_path)
    settings.WEBHOOK_ALLOW_PRIVATE = True
    settings.WEBHOOK_CA_BUNDLE = receiver.ca_bundle
    yield receiver
    receiver.close()


@pytest.fixture
def ecr_calls(monkeypatch, moto_server):
    """GetAuthorizationToken calls the moto server answered, counted in the server, whose
    tokens now last 12 hours as AWS's do (for child processes: ecr_expiry only reaches
    this process's botocore)."""
    from moto.ecr import responses

    from devtools.aws_standin import realistic_ecr_tokens

    calls = {"n": 0}

    def count():
        calls["n"] += 1

    handler = realistic_ecr_tokens(12, on_call=count, install=False)
    monkeypatch.setattr(responses.ECRResponse, "get_authorization_token", handler)
    return calls


def make_due_tasks(count: int, *, due: bool = True, registry_ids=(), **members: Role):
    """`count` tasks of one team, sharing a connector and eu-west-1, one job each;
    due for refresh (or not for a long time)."""
    from tasks_app.models import Job, Plan, TaskConfig

    team = make_team("Platform", **members)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    tasks = [
        TaskConfig.objects.create(
            job=Job.objects.create(plan=plan, key=f"JOB{i}", name=f"Job {i}"),
            region="eu-west-1",
            connector=connector,
            registry_id=registry_ids[i] if i < len(registry_ids) else "",
        )
        for i in range(count)
    ]
    TaskConfig.objects.filter(pk__in=[t.pk for t in tasks]).update(
        refresh_due_at="2000-01-01T00:00:00Z" if due else "2999-01-01T00:00:00Z"
    )
    for task in tasks:
        task.refresh_from_db()
    return tasks


def api_token(plan, job=None, *, expires_at=None) -> str:
    """A new API token of the plan (or job), created by a member; its plain text."""
    from tasks_app.identity.actor import Actor
    from tasks_app.services.tokens import token_create

    user = plan.team.members.first()
    _, raw = token_create(
        plan=plan,
        job=job,
        name="ci",
        expires_at=expires_at,
        actor=Actor(user=user, address="192.0.2.9"),
    )
    return raw


def token_client(raw=None):
    """An API client that sends the token, if any, as a bearer token."""
    from rest_framework.test import APIClient

    client = APIClient()
    if raw:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def give_credential(task, *, password=None, expires_in=None, endpoint=None):
    """Point the task at a credential, as a good run would: a token whose password is
    `password` (default "pw-<namespace>"), valid for `expires_in` (default 6 h)."""
    import base64
    from datetime import timedelta

    from django.utils.timezone import now

    from tasks_app.models import Credential, TaskConfig

    password = f"pw-{task.namespace}" if password is None else password
    expires = now() + (timedelta(hours=6) if expires_in is None else expires_in)
    credential = Credential.objects.create(
        group=f"test:{task.pk}",
        token=base64.b64encode(f"AWS:{password}".encode()).decode(),
        expires_at=expires,
        proxy_endpoint=endpoint or "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    )
    TaskConfig.objects.filter(pk=task.pk).update(credential=credential, last_run_ok=True)
    task.credential, task.last_run_ok = credential, True
    return credential


def generated(task):
    """The task's variables as served, by key (secrets in clear)."""
    from tasks_app.models import TaskConfig
    from tasks_app.services.variables import task_variables

    task = TaskConfig.objects.select_related("credential").get(pk=task.pk)
    return {v.key: v.value for v in task_variables(task, secrets=True)}


def make_served_task(team, connector):
    """Plan WEB-BUILD, job BUILD and a result-scoped task whose credentials are fresh for
    six hours, plus a plan input variable aws.region."""
    from tasks_app.models import Job, Plan, TaskConfig, Variable

    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(
        job=job, region="eu-west-1", connector=connector, scope="result"
    )
    give_credential(task)
    variable = Variable(team=team, plan=plan, key="aws.region")
    variable.set_value("eu-west-1")
    variable.save()
    return plan, job, task, variable


@pytest.fixture
def issuer(tmp_path, settings):
    """A CI system's OIDC issuer on 127.0.0.1 (tests/oidc_issuer.py), trusted over TLS by
    its own CA; the portal's per-process keys and trust rules forgotten before and after."""
    from tasks_app.lib import caches
    from tests.oidc_issuer import Issuer

    started = Issuer(tmp_path)
    settings.OIDC_CA_BUNDLE = str(started.ca_bundle)
    settings.OIDC_ISSUERS = []
    caches.caches_clear()
    yield started
    started.stop()
    caches.caches_clear()
