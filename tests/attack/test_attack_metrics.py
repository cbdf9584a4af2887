"""/metrics, attacked (issue 25).

The attacker: anyone who reaches the portal's address and wants what the metrics tell (the
teams' and plans' names, how many tasks fail, when credentials expire) or wants a scrape to
leak a secret. What they control: the request (no header, another scheme, a wrong token, a
token of the API, a token that shares a prefix with the right one, a session of a signed-in
person, the path's form). What guards it: lib/metrics.py's ``scrape_refusal`` (off while
ECRPORTAL_METRICS_TOKEN is unset; a constant-time comparison of the bearer token), called by
views/health.py's ``metrics`` and by the Celery worker's and beat's own listener
(ECRPORTAL_METRICS_PORT, Kubernetes), and the metrics' labels, which hold names and codes,
never a token, a password or a path.
"""

import urllib.error
import urllib.request

import pytest
from django.test import Client

from tasks_app.lib import metrics
from tasks_app.models import Role
from tests.factories import PASSWORD, give_credential, make_job, make_plan, make_task, make_team
from tests.helpers import free_port, metric_samples

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789abcdef0123"
REFUSED = [
    None,
    "",
    TOKEN,  # no scheme
    f"Basic {TOKEN}",
    f"Bearer {TOKEN[:-1]}",  # a prefix
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN.upper()}",
    "Bearer ecrp_an_api_token_is_not_the_scrape_token",
    "Bearer \u00e9\u00e9\u00e9",
    f"Bearer {TOKEN} {TOKEN}",
]


def _get(authorization: str | None = None, client: Client | None = None, path="/metrics"):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    return (client or Client()).get(path, **headers)


def test_it_is_off_by_default_and_says_so(settings):
    settings.METRICS_TOKEN = None
    for authorization in (None, f"Bearer {TOKEN}", "Bearer "):
        answer = _get(authorization)
        assert answer.status_code == 404
        assert b"ECRPORTAL_METRICS_TOKEN" in answer.content
        assert b"ecrportal_" not in answer.content


def test_without_the_token_nothing_is_told(settings, metrics_dir):
    settings.METRICS_TOKEN = TOKEN
    make_plan(make_team("Secret Team"), key="HIDDEN")
    for authorization in REFUSED:
        answer = _get(authorization)
        assert answer.status_code == 401, authorization
        assert answer["WWW-Authenticate"].startswith("Bearer")
        assert b"ecrportal_" not in answer.content
        assert b"HIDDEN" not in answer.content


def test_a_signed_in_administrator_is_no_scraper(settings, metrics_dir):
    settings.METRICS_TOKEN = TOKEN
    make_team("Platform", root=Role.ADMIN)
    client = Client()
    assert client.login(username="root", password=PASSWORD)
    assert _get(client=client).status_code == 401


def test_the_right_token_gets_the_text_format_with_no_secret(settings, metrics_dir):
    settings.METRICS_TOKEN = TOKEN
    team = make_team("Platform")
    task = make_task(make_job(make_plan(team)))
    credential = give_credential(task, password="hunter2-registry-password")
    answer = _get(f"Bearer {TOKEN}")
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in answer["Cache-Control"] or "max-age=0" in answer["Cache-Control"]
    samples = metric_samples(answer.content)
    labels = (("plan", "WEB-BUILD"), ("status", "never run"), ("team", "platform"))
    assert samples[("ecrportal_tasks", labels)] == 1
    body = answer.content.decode()
    for secret in ("hunter2-registry-password", credential.token, TOKEN, str(task.pk)):
        assert secret not in body
    # The path is exact: no other spelling reaches it.
    assert _get(f"Bearer {TOKEN}", path="/metrics/").status_code == 404


@pytest.mark.parametrize("method", ["post", "put", "delete", "patch", "options"])
def test_another_method_gets_a_plain_405_not_the_csrf_page(settings, metrics_dir, method):
    settings.METRICS_TOKEN = TOKEN
    client = Client(enforce_csrf_checks=True)
    for headers in ({}, {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}):
        answer = getattr(client, method)("/metrics", **headers)
        assert answer.status_code == 405, (method, headers)
        assert answer["Allow"] == "GET, HEAD"
        assert answer["Content-Type"].startswith("text/plain")
        assert b"ecrportal_" not in answer.content
        assert b"<html" not in answer.content.lower()


def test_head_answers_as_get_without_a_body(settings, metrics_dir):
    settings.METRICS_TOKEN = TOKEN
    assert Client().head("/metrics").status_code == 401
    answer = Client().head("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert answer.status_code == 200
    assert answer.content == b""


def test_a_wrong_token_counts_as_a_refused_authentication(settings, metrics_dir):
    settings.METRICS_TOKEN = TOKEN
    for _ in range(3):
        assert _get("Bearer guess").status_code == 401
    samples = metric_samples(_get(f"Bearer {TOKEN}").content)
    assert samples[("ecrportal_authentication_failures_total", (("kind", "metrics"),))] == 3


@pytest.fixture
def listener(settings, metrics_dir):
    """The Celery worker's and beat's listener, started in this process on 127.0.0.1."""
    settings.METRICS_TOKEN = TOKEN
    server = metrics.listener_start(free_port(), address="127.0.0.1")
    assert server is not None
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _listener_get(url: str, authorization: str | None, method: str = "GET"):
    request = urllib.request.Request(url, method=method)
    if authorization is not None:
        request.add_unredirected_header("Authorization", authorization.encode().decode("latin-1"))
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_the_celery_processes_listener_refuses_what_metrics_refuses(listener, settings):
    """The worker's and beat's own /metrics (Kubernetes) checks the token with the same
    function as web's: the same refusals, the same answers."""
    metrics.authentication_failed("token")  # something to leak, were it answered
    for authorization in REFUSED:
        status, headers, body = _listener_get(f"{listener}/metrics", authorization)
        assert status == 401, authorization
        assert headers["WWW-Authenticate"].startswith("Bearer")
        assert b"ecrportal_" not in body
    status, headers, body = _listener_get(f"{listener}/metrics", f"Bearer {TOKEN}")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=")
    assert metric_samples(body)[("ecrportal_authentication_failures_total", (("kind", "token"),))]
    # Only GET /metrics, exactly.
    for path, method in (("/metrics/", "GET"), ("/", "GET"), ("/metrics", "POST")):
        status, _, body = _listener_get(f"{listener}{path}", f"Bearer {TOKEN}", method)
        assert status in (404, 405), (path, method)
        assert b"ecrportal_" not in body
    settings.METRICS_TOKEN = None
    status, _, body = _listener_get(f"{listener}/metrics", f"Bearer {TOKEN}")
    assert (status, b"ECRPORTAL_METRICS_TOKEN" in body) == (404, True)


def test_a_taken_port_is_logged_and_the_process_goes_on(listener, caplog):
    port = int(listener.rsplit(":", 1)[1])
    assert metrics.listener_start(port, address="127.0.0.1") is None
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text


def test_a_scrape_inside_the_cluster_is_not_sent_to_https(settings, metrics_dir):
    """Prometheus scrapes a pod over plain http, like the kubelet's probes: /metrics answers
    there (the token still required) instead of redirecting to the site's https address,
    and every other page still redirects."""
    settings.METRICS_TOKEN = TOKEN
    settings.SECURE_SSL_REDIRECT = True
    assert _get(f"Bearer {TOKEN}").status_code == 200
    assert _get("Bearer wrong").status_code == 401
    assert Client().get("/metrics/").status_code == 301
    assert Client().get("/api/v1/docker-config").status_code == 301
