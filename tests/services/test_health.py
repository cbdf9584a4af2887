import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import OperationalError, connection
from django.utils.timezone import now

from ecrportal.celery import app as celery_app
from tasks_app.models import CanaryPing, Role
from tasks_app.services import health
from tasks_app.tasks import housekeeping

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager_celery():
    """Tasks run inside apply_async: stands in for a worker in these unit tests only."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def test_healthz_answers_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.content == b"OK\n"
    assert response["Cache-Control"].startswith("max-age=0")


def test_readyz_is_ready_when_a_worker_answers_the_canary(client, eager_celery):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["worker"]["ok"] is True
    assert CanaryPing.objects.get().answered_at is not None
    # Public: no host is named; a portal administrator reads which worker answered.
    assert body["checks"]["worker"]["detail"] == "a worker answered"
    assert "workers" not in body["checks"]["worker"]
    assert "@" not in response.content.decode()


def test_a_portal_administrator_reads_which_workers_answered(client, eager_celery):
    from tests.factories import make_team

    make_team("Platform", root=Role.ADMIN)
    user = get_user_model().objects.get(username="root")
    for superuser, shown in ((False, False), (True, True)):
        user.is_superuser = superuser
        user.save()
        client.force_login(user)
        worker = client.get("/readyz").json()["checks"]["worker"]
        assert ("workers" in worker) is shown
    assert len(worker["workers"]) == 1


def test_not_ready_is_one_warning_not_a_server_error(client, settings, caplog):
    settings.READYZ_TIMEOUT_SECONDS = 1
    with caplog.at_level(logging.INFO):
        assert client.get("/readyz").status_code == 503
    assert [
        (r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.WARNING
    ] == [("WARNING", "Not ready: worker: no worker answered within 1 s")]


def test_readyz_is_503_when_no_worker_answers_in_time(client, settings):
    settings.READYZ_TIMEOUT_SECONDS = 1
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    worker = response.json()["checks"]["worker"]
    assert worker == {"ok": False, "detail": "no worker answered within 1 s", "ms": worker["ms"]}
    assert 1 <= elapsed < 5


def test_readyz_is_503_when_the_database_is_unreachable(client, monkeypatch):
    def broken_cursor():
        raise OperationalError("connection refused")

    monkeypatch.setattr(health.connection, "cursor", broken_cursor)
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["detail"] == "database unreachable (OperationalError)"
    assert checks["worker"]["ok"] is False


def test_a_canary_is_answered_once(db):
    ping = CanaryPing.objects.create()
    assert health.canary_answer(ping_id=str(ping.id), worker="w1@host") is True
    assert health.canary_answer(ping_id=str(ping.id), worker="w2@host") is False
    ping.refresh_from_db()
    assert ping.answered_by == "w1@host"


def test_housekeeping_purges_old_canaries(eager_celery):
    old = CanaryPing.objects.create(created=now() - timedelta(hours=2))
    fresh = CanaryPing.objects.create()
    housekeeping.delay()
    assert list(CanaryPing.objects.values_list("id", flat=True)) == [fresh.id]
    assert not CanaryPing.objects.filter(id=old.id).exists()


def test_concurrent_probes_share_one_canary(transactional_db):
    def probe(_):
        try:
            return health.readiness(timeout=1)
        finally:
            connection.close()

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(probe, range(5)))
    assert [r["worker"].ok for r in results] == [False] * 5
    assert CanaryPing.objects.count() == 1


def test_health_checks_answer_over_plain_http_behind_an_https_site(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/login/").status_code == 301
