import itertools
import os
import shutil
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings as django_settings
from django.test.testcases import QuietWSGIRequestHandler

from tasks_app.models import Role, Team
from tests.factories import HOST_ACCESS_KEY_ID, make_team
from tests.helpers import ARTIFACTS, require

CHROMIUM = "/usr/bin/chromium"


# pytest-django's live server answers HTTP/1.1 with keep-alive and writes the headers and
# the body of an answer apart: with Nagle's algorithm on, each answer on a kept-alive
# connection (Chromium's, schemathesis's) then waits out the client's delayed ACK, about
# 40 ms. The test process's server only; the portal's own servers are gunicorn's.
QuietWSGIRequestHandler.disable_nagle_algorithm = True
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


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


# Under make test's parallel workers, the longest files go first, so that none of them ends
# the run on one worker alone: those that wait on processes (integration) taking turns with
# those that keep a core busy (slow), then the browser's, then the rest.
@pytest.hookimpl(trylast=True)  # after pytest-django's order, which no test relies on
def pytest_collection_modifyitems(config, items):
    files: dict[str, list] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::")[0], []).append(item)

    def marked(name):
        return [f for f, its in files.items() if any(i.get_closest_marker(name) for i in its)]

    waiting, busy = marked("integration"), marked("slow")
    first = [f for pair in itertools.zip_longest(waiting, busy) for f in pair if f]
    first += [f for f in marked("browser") if f not in first]
    order = {f: i for i, f in enumerate(first)}
    # Stable: within a file, and among the other files, pytest-django's order stays.
    items.sort(key=lambda item: order.get(item.nodeid.split("::")[0], len(order)))


# Test files whose costly module or session fixture the workers should not each make again:
# make run's runtime .venv, the SSO provider (a process with its own database).
WHOLE_FILES = {"tests/integration/test_make_run.py", "tests/browser/test_sso.py"}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """make test's --dist loadgroup: each test goes to the next free worker, except that the
    tests of a file in WHOLE_FILES (or of an xdist_group) go to one worker together.

    xdist's own loadgroup reads xdist_group marks from node IDs it rewrites, which pytest
    9.2 no longer lets it do (pytest-dev/pytest-xdist#1386): the marks would be ignored."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class Scheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return path if path in WHOLE_FILES else super()._split_scope(nodeid)

    return Scheduling(config, log)


def xdist_worker_number() -> int:
    """0, 1, … for pytest-xdist's workers gw0, gw1, … (make test); 0 without xdist."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker.removeprefix("gw")) if worker.startswith("gw") else 0


@pytest.fixture
def redis_url():
    """A Redis database for broker tests, emptied first. Skips (or fails) without one.

    The broker URL's database for the first (or only) pytest process; each further xdist
    worker n takes the database n below it (wrapping at 16), so that the Celery workers and
    beats of tests running at once never take each other's messages nor empty each other's
    queues."""
    import redis

    url = django_settings.CELERY_BROKER_URL
    if urlsplit(url).scheme not in ("redis", "rediss"):
        url = os.environ.get("ECRPORTAL_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    parts = urlsplit(url)
    database = (int(parts.path.strip("/") or 0) - xdist_worker_number()) % 16
    url = urlunsplit(parts._replace(path=f"/{database}"))
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
    from playwright.sync_api import expect, sync_playwright

    from tests.browser import EXPECT_TIMEOUT_MS

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser, request):
    from tests.browser import new_context

    context = new_context(browser, viewport={"width": 1280, "height": 800})
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
    """`make demo`'s AWS stand-in (devtools/aws_standin.py: moto's server, and the ECR
    Public moto lacks) as a real HTTP server on 127.0.0.1, without authentication."""
    import logging

    from devtools.aws_standin import serve

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = serve(0, on_public_call=lambda: _public_calls.append(1))
    # port 0: the one the system chose, none other's
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


# ECR Public tokens the stand-in issued in this process (the ecr_public_calls fixture).
_public_calls: list = []


@pytest.fixture
def ecr_public_calls():
    """How many ECR Public tokens the moto server issued since the test began."""
    start = len(_public_calls)
    return lambda: len(_public_calls) - start


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


@pytest.fixture
def ecr_expiry(monkeypatch):
    """moto's ECR tokens expire on 2015-01-01; this gives them AWS's 12 hours instead.

    Returns a function to set another expiry (a datetime) for later calls.
    """
    from datetime import UTC, datetime, timedelta

    from tasks_app.lib import aws

    expiry = {"at": None}

    def rewrite(parsed=None, model=None, **kwargs):
        ecr = model.service_model.service_name == "ecr"  # ECR Public's the stand-in dates
        if ecr and model.name == "GetAuthorizationToken" and "authorizationData" in parsed:
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
def hostile_aws(settings, monkeypatch):
    """The portal pointed at a stand-in for AWS that fails (tests/hostile_aws.py), one
    attempt per call; set its `answer` to (status, content type, body)."""
    from tests.hostile_aws import HostileAws

    server = HostileAws()
    settings.AWS_ENDPOINT_URL = server.url
    settings.AWS_ENDPOINT_URLS = {}
    settings.AWS_MAX_ATTEMPTS = 1
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield server
    server.close()


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


@pytest.fixture
def metrics_dir(tmp_path, settings, monkeypatch):
    """This test's own metrics folder: what this process counts from now on is written
    there (a role of its own makes prometheus_client open new files), and /metrics reads
    only it, whatever other tests and workers count meanwhile."""
    import uuid

    from tasks_app.lib import metrics

    folder = tmp_path / "metrics"
    folder.mkdir()
    settings.METRICS_DIR = folder
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    monkeypatch.setenv(metrics.ROLE_VARIABLE, "t" + uuid.uuid4().hex[:12])
    return folder
