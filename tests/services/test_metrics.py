"""The Prometheus metrics (issue 25 §1): what /metrics says follows what the portal did,
read with prometheus_client's own parser; the database's gauges cost the same number of
queries at 3 tasks and at 60."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.timezone import now

from tasks_app.identity.actor import SYSTEM
from tasks_app.lib import metrics
from tasks_app.models import NotificationDelivery, Role, TaskConfig, TaskRun
from tasks_app.services.claims import refresh_claim
from tasks_app.services.metrics import metrics_text
from tasks_app.services.notifications import notification_send
from tasks_app.services.refresh import expiries_record, refresh_group
from tasks_app.services.runs import task_run
from tasks_app.services.status import statuses_record
from tests.factories import (
    give_credential,
    make_connector,
    make_due_tasks,
    make_job,
    make_plan,
    make_task,
    make_team,
    token_client,
)
from tests.helpers import free_port, metric_samples

pytestmark = pytest.mark.django_db

ECR = "api.ecr:GetAuthorizationToken"


def _value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_run_counts_its_outcome_and_its_aws_call(metrics_dir, aws_endpoint, ecr_expiry):
    team = make_team("Platform")
    task = make_task(make_job(make_plan(team)), make_connector(team))
    run = task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)
    assert run.outcome == TaskRun.Outcome.SUCCEEDED, run.error_message

    samples = metric_samples(metrics_text())
    assert _value(samples, "ecrportal_refresh_outcomes_total", outcome="succeeded", cause="none")
    assert (
        _value(samples, "ecrportal_refresh_outcomes_total", outcome="failed", cause="other") == 0
    )
    assert (
        _value(samples, "ecrportal_aws_calls_total", api="ecr:GetAuthorizationToken", outcome="ok")
        == 1
    )
    # A credential now exists: the time of the last success is this run's.
    last = _value(samples, "ecrportal_refresh_last_success_timestamp_seconds")
    assert abs(last - now().timestamp()) < 60


def test_a_throttled_refresh_counts_its_cause_and_a_throttled_call(
    metrics_dir, aws_endpoint, aws_failure
):
    tasks = make_due_tasks(3)
    aws_failure("api.ecr:GetAuthorizationToken", "ThrottlingException", status=400)
    (claim,) = refresh_claim()
    assert refresh_group(claim_id=claim.id) == 0

    samples = metric_samples(metrics_text())
    assert _value(
        samples, "ecrportal_refresh_outcomes_total", outcome="failed", cause="ThrottlingException"
    ) == len(tasks)
    assert (
        _value(
            samples,
            "ecrportal_aws_calls_total",
            api="ecr:GetAuthorizationToken",
            outcome="throttled",
        )
        == 1
    )
    # An unknown AWS code is counted, under a bounded label.
    aws_failure("api.ecr:GetAuthorizationToken", "SomethingNewException", status=400)
    TaskConfig.objects.update(refresh_due_at=now() - timedelta(minutes=1), failures=0)
    (claim,) = refresh_claim()
    refresh_group(claim_id=claim.id)
    samples = metric_samples(metrics_text())
    assert _value(
        samples, "ecrportal_refresh_outcomes_total", outcome="failed", cause="other"
    ) == len(tasks)
    assert not any("SomethingNew" in str(key) for key in samples)


def test_an_expiring_credential_moves_the_expiry_gauges(metrics_dir):
    team = make_team("Platform")
    plan = make_plan(team)
    far, soon, off = (make_task(make_job(plan, key=f"J{i}")) for i in range(3))
    give_credential(far, expires_in=timedelta(hours=10))
    samples = metric_samples(metrics_text())
    assert _value(samples, "ecrportal_credentials_expiring") == 0
    earliest = _value(samples, "ecrportal_credential_earliest_expiry_seconds")
    assert 10 * 3600 - 60 < earliest <= 10 * 3600

    give_credential(soon, expires_in=timedelta(minutes=30))
    give_credential(off, expires_in=timedelta(minutes=5))
    TaskConfig.objects.filter(pk=off.pk).update(enabled=False)  # serves no one: not counted
    samples = metric_samples(metrics_text())
    assert _value(samples, "ecrportal_credentials_expiring") == 1
    earliest = _value(samples, "ecrportal_credential_earliest_expiry_seconds")
    assert 30 * 60 - 60 < earliest <= 30 * 60


def test_tasks_by_team_plan_and_status_follow_the_recorded_status(metrics_dir):
    team = make_team("Platform")
    plan = make_plan(team, key="WEB")
    ok, expiring, failing, _never, disabled = (
        make_task(make_job(plan, key=f"J{i}")) for i in range(5)
    )
    give_credential(ok)
    give_credential(expiring, expires_in=timedelta(minutes=10))
    give_credential(failing)
    TaskConfig.objects.filter(pk=failing.pk).update(last_run_ok=False)
    TaskConfig.objects.filter(pk=disabled.pk).update(enabled=False)
    statuses_record(task_ids=[ok.pk, expiring.pk, failing.pk])  # as their runs record them
    other = make_plan(make_team("Data"), key="ETL")
    make_task(make_job(other))

    def counts():
        samples = metric_samples(metrics_text())
        return {
            status: _value(samples, "ecrportal_tasks", team="platform", plan="WEB", status=status)
            for status in ("ok", "expired", "failing", "never run", "disabled")
        }, samples

    now_counts, samples = counts()
    assert now_counts == {"ok": 2, "expired": 0, "failing": 1, "never run": 1, "disabled": 1}
    assert _value(samples, "ecrportal_tasks", team="data", plan="ETL", status="never run") == 1

    # The token runs out; the next tick records it, and the gauge follows.
    expiries_record(at=now() + timedelta(minutes=11))
    later, _ = counts()
    assert later == {"ok": 1, "expired": 1, "failing": 1, "never run": 1, "disabled": 1}


def test_due_work_waiting_unclaimed_has_an_age(metrics_dir):
    tasks = make_due_tasks(2)
    TaskConfig.objects.update(refresh_due_at=now() - timedelta(minutes=7))
    samples = metric_samples(metrics_text())
    age = _value(samples, "ecrportal_due_unclaimed_oldest_age_seconds")
    assert 7 * 60 - 5 < age < 7 * 60 + 60
    refresh_claim()  # claimed: no longer waiting
    samples = metric_samples(metrics_text())
    assert _value(samples, "ecrportal_due_unclaimed_oldest_age_seconds") == 0
    assert len(tasks) == 2


def test_the_scrape_queries_do_not_grow_with_tasks(metrics_dir):
    make_due_tasks(3)
    with CaptureQueriesContext(connection) as few:
        metrics_text()
    team = make_team("More")
    plan = make_plan(team, key="MORE")
    for i in range(60):
        task = make_task(make_job(plan, key=f"M{i}"))
        if i % 2:
            give_credential(task, expires_in=timedelta(minutes=i))
    with CaptureQueriesContext(connection) as many:
        metrics_text()
    assert len(many) == len(few) <= 4, [q["sql"] for q in many.captured_queries]


@pytest.fixture(params=["filesystem", "redis"])
def broker(request, tmp_path):
    """The Celery app's reads (the queue depths) and this test's messages go to a broker of
    the test's own: a filesystem broker's folder, or a Redis database (redis_url)."""
    from ecrportal.celery import app

    if request.param == "redis":
        url, options = request.getfixturevalue("redis_url"), {"socket_connect_timeout": 2}
    else:
        folder = tmp_path / "queue"
        folder.mkdir()
        url = "filesystem://localhost/"
        options = {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(tmp_path / "control"),
        }
    before = {key: app.conf[key] for key in ("broker_read_url", "broker_transport_options")}
    app.conf.update(broker_read_url=url, broker_transport_options=options)
    yield app
    app.conf.update(before)


def _publish(app, queue_name: str, n: int) -> None:
    """n messages straight into the queue (the default exchange: no binding to look up in
    kombu's per-process state, which other tests' brokers share)."""
    with app.connection_for_read() as connection:
        producer = connection.Producer()
        for i in range(n):
            producer.publish({"n": i}, exchange="", routing_key=queue_name)


def test_the_queues_depths_are_counted_on_the_broker(metrics_dir, broker):
    samples = metric_samples(metrics_text())
    assert _value(samples, "ecrportal_broker_up") == 1
    assert _value(samples, "ecrportal_queue_messages", queue="celery") == 0
    assert _value(samples, "ecrportal_queue_messages", queue="quick") == 0

    _publish(broker, "celery", 3)
    _publish(broker, "quick", 2)
    samples = metric_samples(metrics_text())
    assert _value(samples, "ecrportal_queue_messages", queue="celery") == 3
    assert _value(samples, "ecrportal_queue_messages", queue="quick") == 2

    # Taken by a consumer: no longer waiting.
    with broker.connection_for_read() as connection:
        message = connection.SimpleQueue("quick").get(timeout=5)
        message.ack()
    samples = metric_samples(metrics_text())
    assert _value(samples, "ecrportal_queue_messages", queue="quick") == 1


def test_a_broker_that_does_not_answer_is_told_not_failed(metrics_dir, caplog):
    from ecrportal.celery import app

    before = {key: app.conf[key] for key in ("broker_read_url", "broker_transport_options")}
    app.conf.update(
        broker_read_url=f"redis://127.0.0.1:{free_port()}/0",
        broker_transport_options={"socket_connect_timeout": 2},
    )
    try:
        samples = metric_samples(metrics_text())
    finally:
        app.conf.update(before)
    assert _value(samples, "ecrportal_broker_up") == 0
    assert not [name for name, _ in samples if name == "ecrportal_queue_messages"]
    # The database's gauges are still there.
    assert ("ecrportal_due_unclaimed_oldest_age_seconds", ()) in samples
    (record,) = [r for r in caplog.records if r.name == "tasks_app.lib.celery_queue"]
    assert "queue depths" in record.getMessage()


def test_api_requests_are_counted_by_route_name_and_status(metrics_dir):
    team = make_team("Platform")
    task = make_task(make_job(make_plan(team)))
    client = token_client("ecrp_not_a_token")
    answer = client.get(f"/api/v1/tasks/{task.pk}/variables")
    assert answer.status_code == 401
    token_client().get("/api/v1/no/such/route")

    samples = metric_samples(metrics_text())
    assert (
        _value(samples, "ecrportal_api_requests_total", route="api_task_variables", status="401")
        == 1
    )
    assert _value(samples, "ecrportal_api_requests_total", route="unmatched", status="404") == 1
    assert (
        _value(samples, "ecrportal_api_request_duration_seconds_count", route="api_task_variables")
        == 1
    )
    assert not any(str(task.pk) in str(key) for key in samples)  # never the path
    assert _value(samples, "ecrportal_authentication_failures_total", kind="token") == 1


def test_a_tick_records_its_time(metrics_dir):
    from tasks_app.tasks import refresh_tick

    refresh_tick()
    samples = metric_samples(metrics_text())
    tick = _value(samples, "ecrportal_beat_last_tick_timestamp_seconds")
    assert abs(tick - now().timestamp()) < 60


def test_every_metric_is_named_for_the_portal_with_its_unit():
    names = {
        m.describe()[0].name
        for m in (
            metrics.AWS_CALLS,
            metrics.REFRESH_OUTCOMES,
            metrics.NOTIFICATION_DELIVERIES,
            metrics.AUTHENTICATION_FAILURES,
            metrics.API_REQUESTS,
            metrics.API_LATENCY,
        )
    }
    assert all(name.startswith("ecrportal_") for name in names)
    assert "ecrportal_api_request_duration_seconds" in names


def test_notification_deliveries_are_counted_by_channel_and_outcome(
    metrics_dir, settings, aws_endpoint, aws_failure, ecr_expiry
):
    team = make_team("Platform", alice=Role.ADMIN)
    task = make_task(make_job(make_plan(team)), make_connector(team))
    aws_failure(ECR, "AccessDeniedException")
    task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)  # never run -> failing
    assert _send_all() == []  # no mail server: skipped at once, with no message to send
    settings.EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    aws_failure(ECR, None)
    task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=SYSTEM)  # failing -> ok
    assert _send_all() == ["sent"]

    samples = metric_samples(metrics_text())
    deliveries = "ecrportal_notification_deliveries_total"
    assert _value(samples, deliveries, channel="email", outcome="skipped") == 1
    assert _value(samples, deliveries, channel="email", outcome="sent") == 1


def test_authentication_failures_are_counted_by_kind(metrics_dir, client):
    make_team("Platform", alice=Role.ADMIN)
    answer = client.post(reverse("login"), {"username": "alice", "password": "wrong"})
    assert answer.status_code == 200
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert token_client(jwt_like).get("/api/v1/docker-config").status_code == 401
    assert token_client("ecrp_unknown").get("/api/v1/docker-config").status_code == 401

    samples = metric_samples(metrics_text())
    failures = "ecrportal_authentication_failures_total"
    assert _value(samples, failures, kind="password") == 1
    assert _value(samples, failures, kind="ci_id_token") == 1
    assert _value(samples, failures, kind="token") == 1


def _send_all():
    """What workers do with the messages queued for the pending deliveries."""
    pending = NotificationDelivery.objects.filter(state="pending").values_list("id", flat=True)
    return [notification_send(delivery_id=delivery_id) for delivery_id in pending]
