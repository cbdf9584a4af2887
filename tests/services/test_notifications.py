"""Status changes and their notifications (SPEC §7): e-mail to admins, signed webhooks."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from tasks_app.identity.actor import SYSTEM
from tasks_app.lib.webhooks import WebhookError, webhook_target
from tasks_app.models import (
    AuditEvent,
    Credential,
    Job,
    NotificationDelivery,
    Plan,
    Role,
    TaskConfig,
    TaskStatusChange,
    Team,
)
from tasks_app.services import notifications
from tasks_app.services.notifications import notification_send, notifications_due
from tasks_app.services.refresh import expiries_record
from tasks_app.services.runs import task_run
from tasks_app.services.status import statuses_record
from tests.factories import PASSWORD, SECRET, generated, make_connector, make_team, make_user

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec-SENTINEL-0123456789abcdef"
ECR = "api.ecr:GetAuthorizationToken"


@pytest.fixture
def task():
    team = make_team("Platform", alice=Role.ADMIN, ed=Role.EDITOR, vic=Role.VIEWER)
    make_user("root", email="root@example.com", is_superuser=True)  # not a member
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    return TaskConfig.objects.create(
        job=job, region="eu-west-1", connector=make_connector(team), description="ECR login"
    )


@pytest.fixture
def email(settings):
    settings.EMAIL_ENABLED = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def _with_webhook(task, url):
    Team.objects.filter(pk=task.job.plan.team_id).update(webhook_url=url)
    team = Team.objects.get(pk=task.job.plan.team_id)
    team.webhook_secret = WEBHOOK_SECRET
    team.save()
    # A run tells the team as it was when the run loaded the task (runs load their tasks
    # anew; this test holds its own).
    task.job.plan.team.refresh_from_db()


def _changes(task):
    return [(c.previous, c.status) for c in task.status_changes.order_by("at")]


def _record(task_id):
    """One task's status, recorded if it changed (as runs and ticks record it)."""
    with transaction.atomic():
        changes = statuses_record(task_ids=[task_id])
    return changes[0] if changes else None


def _send_all():
    """What workers do with the messages queued for the pending deliveries."""
    pending = NotificationDelivery.objects.filter(state="pending").values_list("id", flat=True)
    return [notification_send(delivery_id=delivery_id) for delivery_id in pending]


def test_it_records_ok_failing_expired_and_recovery(task, aws_endpoint, ecr_expiry, aws_failure):
    run = task_run(task=task, trigger="manual", actor=SYSTEM)
    assert _changes(task) == [("never run", "ok")]
    assert not NotificationDelivery.objects.exists()  # a first success is not news

    aws_failure(ECR, "ThrottlingException")
    failed = task_run(task=task, trigger="manual", actor=SYSTEM)
    task.refresh_from_db()
    assert task.status == "failing"
    assert task.recorded_status == "failing"
    change = task.status_changes.get(status="failing")
    assert change.run == failed
    assert "throttl" in change.error.lower()
    assert change.expires_at == run.token_expires_at

    # Nothing runs, the token runs out: the tick records it.
    assert len(expiries_record(at=run.token_expires_at - timedelta(seconds=1))) == 0
    Credential.objects.filter(tasks=task).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert len(expiries_record()) == 1
    assert len(expiries_record()) == 0

    aws_failure(ECR, None)
    task_run(task=task, trigger="manual", actor=SYSTEM)
    assert _changes(task) == [
        ("never run", "ok"),
        ("ok", "failing"),
        ("failing", "expired"),
        ("expired", "ok"),
    ]
    kinds = [c.kind for c in task.status_changes.order_by("at")]
    assert kinds == ["", "failing", "expired", "recovered"]
    # E-mail is on by default; no webhook is set.
    assert NotificationDelivery.objects.filter(channel="email").count() == 3
    assert not NotificationDelivery.objects.filter(channel="webhook").exists()


def test_a_change_seen_twice_is_recorded_once(task, aws_endpoint, ecr_expiry):
    task_run(task=task, trigger="manual", actor=SYSTEM)
    assert _record(task.id) is None
    Credential.objects.filter(tasks=task).update(expires_at=timezone.now() - timedelta(1))
    first, second = _record(task.id), _record(task.id)
    assert first is not None
    assert second is None
    assert TaskStatusChange.objects.filter(status="expired").count() == 1


def test_disabled_tasks_are_not_swept(task, aws_endpoint, ecr_expiry):
    task_run(task=task, trigger="manual", actor=SYSTEM)
    TaskConfig.objects.filter(pk=task.pk).update(enabled=False)
    assert len(expiries_record(at=timezone.now() + timedelta(days=1))) == 0


def test_it_emails_the_teams_admins_only(task, email, aws_endpoint, ecr_expiry, aws_failure):
    task_run(task=task, trigger="manual", actor=SYSTEM)
    aws_failure(ECR, "AccessDeniedException")
    task_run(task=task, trigger="manual", actor=SYSTEM)

    assert _send_all() == ["sent"]
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert "ECR login" in message.subject
    assert "is failing" in message.subject
    assert "WEB-BUILD-BUILD" in message.subject
    assert "still served until" in message.body
    assert reverse("task_detail", args=[task.id]) in message.body
    password = generated(task)["custom.aws.ecr.password"]
    for text in (message.subject, message.body):
        assert password not in text
        assert SECRET not in text
    delivery = NotificationDelivery.objects.get()
    assert delivery.target == "alice@example.com"
    assert delivery.attempts == 1


def test_without_smtp_the_email_is_skipped_with_the_reason(task, aws_endpoint, aws_failure):
    aws_failure(ECR, "AccessDeniedException")
    task_run(task=task, trigger="manual", actor=SYSTEM)
    assert _send_all() == []  # skipped when recorded: nothing queued for it
    delivery = NotificationDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.next_attempt_at) == ("skipped", 0, None)
    assert "ECRPORTAL_EMAIL_HOST" in delivery.last_error
    assert not mail.outbox


def test_the_webhook_gets_signed_json_without_secrets(
    task, webhook_receiver, aws_endpoint, ecr_expiry, aws_failure
):
    _with_webhook(task, webhook_receiver.url)
    task_run(task=task, trigger="manual", actor=SYSTEM)
    aws_failure(ECR, "AccessDeniedException")
    task_run(task=task, trigger="manual", actor=SYSTEM)

    assert _send_all() == ["sent"]  # the webhook; the e-mail was skipped (no SMTP set)
    assert NotificationDelivery.objects.get(channel="email").state == "skipped"
    (request,) = webhook_receiver.received
    headers, body = request["headers"], request["body"]
    assert request["path"] == "/hooks/ecr"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-ECRPortal-Event"] == "task.status_changed"
    signed = headers["X-ECRPortal-Timestamp"].encode() + b"." + body
    expected = hmac.new(WEBHOOK_SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["X-ECRPortal-Signature"] == f"sha256={expected}"
    assert abs(int(headers["X-ECRPortal-Timestamp"]) - timezone.now().timestamp()) < 60

    payload = json.loads(body)
    delivery = NotificationDelivery.objects.get(channel="webhook")
    assert payload["delivery"] == headers["X-ECRPortal-Delivery"] == str(delivery.id)
    assert payload["kind"] == "failing"
    assert (payload["previous"], payload["status"]) == ("ok", "failing")
    assert payload["task"]["id"] == str(task.id)
    assert payload["task"]["plan"] == "WEB-BUILD"
    assert payload["team"]["slug"] == "platform"
    assert "may not call ecr:GetAuthorizationToken" in payload["error"]
    password = generated(task)["custom.aws.ecr.password"]
    for secret in (password, SECRET, WEBHOOK_SECRET):
        assert secret.encode() not in body
    assert delivery.state == "sent"
    assert delivery.response_status == 204


def test_a_refused_delivery_is_retried_with_back_off_then_marked_failed(
    task, webhook_receiver, settings, aws_endpoint, aws_failure
):
    settings.NOTIFY_ATTEMPTS = 3
    settings.WEBHOOK_TIMEOUT = 1
    _with_webhook(task, webhook_receiver.url)
    Team.objects.update(notify_email=False)
    task.job.plan.team.refresh_from_db()
    aws_failure(ECR, "AccessDeniedException")
    task_run(task=task, trigger="manual", actor=SYSTEM)
    delivery = NotificationDelivery.objects.get()

    webhook_receiver.answers += [500, 503]
    assert notification_send(delivery_id=delivery.id) == "pending"
    delivery.refresh_from_db()
    assert delivery.attempts == 1
    assert delivery.response_status == 500
    assert "HTTP 500" in delivery.last_error
    wait = (delivery.next_attempt_at - timezone.now()).total_seconds()
    assert settings.BACKOFF_BASE * 0.4 <= wait <= settings.BACKOFF_BASE
    assert notification_send(delivery_id=delivery.id) is None  # not due yet
    assert notifications_due() == []

    NotificationDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert notification_send(delivery_id=delivery.id) == "pending"  # 503
    NotificationDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert notification_send(delivery_id=delivery.id) == "sent"  # 204
    assert len(webhook_receiver.received) == 3
    delivery.refresh_from_db()
    assert (delivery.attempts, delivery.state, delivery.last_error) == (3, "sent", "")

    # Every attempt failing: marked failed after NOTIFY_ATTEMPTS, never retried again.
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        state="pending", attempts=0, next_attempt_at=timezone.now()
    )
    Team.objects.update(webhook_url="https://127.0.0.1:9/unreachable")
    NotificationDelivery.objects.filter(pk=delivery.pk).update(
        target="https://127.0.0.1:9/unreachable"
    )
    for expected in ("pending", "pending", "failed"):
        NotificationDelivery.objects.filter(pk=delivery.pk, state="pending").update(
            next_attempt_at=timezone.now()
        )
        assert notification_send(delivery_id=delivery.id) == expected
    delivery.refresh_from_db()
    assert delivery.next_attempt_at is None
    assert "could not be reached" in delivery.last_error
    assert notifications_due(at=timezone.now() + timedelta(days=1)) == []


def test_an_attempt_held_by_a_lost_worker_is_made_again(task, email, aws_endpoint, aws_failure):
    aws_failure(ECR, "AccessDeniedException")
    task_run(task=task, trigger="manual", actor=SYSTEM)
    delivery = NotificationDelivery.objects.get()
    assert notifications.notification_claim(delivery_id=delivery.id) is not None
    # The worker dies here. The claim is a lease: due again once it runs out.
    assert notifications_due() == []
    later = timezone.now() + timedelta(minutes=5)
    assert notifications_due(at=later) == [str(delivery.id)]
    assert notifications.notification_claim(delivery_id=delivery.id, at=later) is not None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/x", "must start with https://"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://[::ffff:127.0.0.1]/x", "loopback"),
        ("https://10.1.2.3/x", "private"),
        ("https://192.168.0.10/x", "private"),
        ("https://169.254.169.254/latest/meta-data", "link-local"),
        ("https://0.0.0.0/x", "unspecified"),
        ("https://[::]/x", "unspecified"),
        ("https://100.64.0.1/x", "carrier-grade NAT"),
        ("https://100.127.255.254/x", "carrier-grade NAT"),
        ("https://[2002:7f00:1::]/x", r"loopback address \(127\.0\.0\.1\) in IPv6 form"),
        ("https://[2002:a9fe:a9fe::]/x", r"link-local address \(169\.254\.169\.254\)"),
        ("https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/x", "loopback"),
        ("https://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/x", "private"),  # Teredo itself
        ("https://[64:ff9b::a9fe:a9fe]/x", "link-local"),
        ("https://[64:ff9b:1::1]/x", "reserved"),
        ("https://[::127.0.0.1]/x", "loopback"),
        ("https://[ff0e::1]/x", "multicast"),
        ("https://224.0.0.1/x", "multicast"),
        ("https://198.18.0.1/x", "private"),
        ("https://[fd00::1]/x", "private"),
        ("https://user:pw@93.184.216.34/x", "no user name or password"),
        ("https://[::1/x", "not a valid URL"),
        ("https:///x", "no host name"),
    ],
)
def test_it_refuses_webhooks_to_private_addresses(url, message):
    with pytest.raises(WebhookError, match=message):
        webhook_target(url)


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "[2606:4700::1111]", "[2002:5db8:d822::1]", "[64:ff9b::808:808]"]
)
def test_it_accepts_globally_routable_addresses(address):
    assert webhook_target(f"https://{address}/hook").address == address.strip("[]")


def test_a_deployment_may_allow_private_webhooks(settings):
    assert webhook_target("https://93.184.216.34:8443/hook?x=1").path == "/hook?x=1"
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert webhook_target("https://127.0.0.1/hook").address == "127.0.0.1"
    with pytest.raises(WebhookError, match="https://"):
        webhook_target("http://127.0.0.1/hook")


def test_the_webhook_certificate_is_verified(task, webhook_receiver, settings):
    settings.WEBHOOK_CA_BUNDLE = ""  # the public CAs do not know the receiver's certificate
    _with_webhook(task, webhook_receiver.url)
    with pytest.raises(WebhookError, match="TLS"):
        notifications.webhook_ping(team=Team.objects.get())
    assert webhook_receiver.received == []


def _login(client, username):
    assert client.login(username=username, password=PASSWORD)


def test_admins_set_the_webhook_and_its_secret_is_never_shown(task, client, webhook_receiver):
    team = task.job.plan.team
    url = reverse("team_notifications", args=[team.id])
    _login(client, "alice")

    answer = client.post(url, {"webhook_url": "http://hooks.example.com/", "notify_email": "on"})
    assert answer.status_code == 400
    assert "must start with https://" in answer.content.decode()

    answer = client.post(url, {"webhook_url": webhook_receiver.url, "notify_email": "on"})
    assert answer.status_code == 400
    assert "Enter a signing secret" in answer.content.decode()

    answer = client.post(
        url, {"webhook_url": webhook_receiver.url, "webhook_secret": WEBHOOK_SECRET}
    )
    assert answer.status_code == 302
    team.refresh_from_db()
    assert team.webhook_url == webhook_receiver.url
    assert not team.notify_email
    assert team.webhook_secret.reveal() == WEBHOOK_SECRET

    page = client.get(url).content.decode()
    assert webhook_receiver.url in page
    assert WEBHOOK_SECRET not in page
    event = AuditEvent.objects.get(action="team.notifications_updated")
    assert WEBHOOK_SECRET not in json.dumps(event.changes)
    assert event.changes["webhook_secret"] == "changed"

    # Saving again without a secret keeps the one that is set.
    client.post(url, {"webhook_url": webhook_receiver.url, "notify_email": "on"})
    team.refresh_from_db()
    assert team.notify_email
    assert team.webhook_secret.reveal() == WEBHOOK_SECRET

    answer = client.post(reverse("team_webhook_test", args=[team.id]), follow=True)
    assert "accepted a signed ping (HTTP 204)" in answer.content.decode()
    assert webhook_receiver.json()["event"] == "ping"

    # Removing the URL removes the secret too.
    client.post(url, {"webhook_url": "", "notify_email": "on"})
    team.refresh_from_db()
    assert team.webhook_url == ""
    assert not team.webhook_secret


@pytest.mark.parametrize("username", ["ed", "vic"])
def test_members_see_the_delivery_log_but_only_admins_change_settings(
    task, client, username, aws_endpoint, aws_failure
):
    aws_failure(ECR, "AccessDeniedException")
    task_run(task=task, trigger="manual", actor=SYSTEM)
    _send_all()
    team = task.job.plan.team
    _login(client, username)
    url = reverse("team_notifications", args=[team.id])
    page = client.get(url).content.decode()
    assert "never run → failing" in page
    assert "Skipped" in page
    assert 'name="webhook_url"' not in page
    assert client.post(url, {"webhook_url": ""}).status_code == 403
    assert client.post(reverse("team_webhook_test", args=[team.id])).status_code == 403


def test_the_delivery_log_costs_a_fixed_number_of_queries(
    task, client, django_assert_max_num_queries, aws_endpoint, aws_failure
):
    aws_failure(ECR, "AccessDeniedException")
    for _ in range(3):
        task_run(task=task, trigger="manual", actor=SYSTEM)
        TaskConfig.objects.filter(pk=task.pk).update(recorded_status="ok")
    assert NotificationDelivery.objects.count() == 3
    _login(client, "alice")
    with django_assert_max_num_queries(12):
        client.get(reverse("team_notifications", args=[task.job.plan.team_id]))


def test_the_task_page_lists_its_status_changes(task, client, aws_endpoint, aws_failure):
    aws_failure(ECR, "AccessDeniedException")
    task_run(task=task, trigger="manual", actor=SYSTEM)
    _login(client, "vic")
    page = client.get(reverse("task_detail", args=[task.id])).content.decode()
    assert "Status changes" in page
    assert "never run → " in page
    assert "may not call ecr:GetAuthorizationToken" in page


@pytest.mark.django_db(transaction=True)
def test_a_broker_that_cannot_take_a_notification_does_not_fail_the_run(
    task, email, monkeypatch, aws_endpoint, aws_failure
):
    from kombu.exceptions import OperationalError

    from tasks_app import tasks as celery_tasks

    def broker_down(*args):
        raise OperationalError("Connection refused")

    monkeypatch.setattr(celery_tasks.notification_send, "delay", broker_down)
    aws_failure(ECR, "AccessDeniedException")
    run = task_run(
        task=task, trigger="manual", actor=SYSTEM
    )  # commits, then fails to queue: no raise
    assert run.outcome == "failed"
    delivery = NotificationDelivery.objects.get()
    assert delivery.state == "pending"  # the next tick queues it again
    assert notifications_due(at=timezone.now() + timedelta(seconds=1)) == [str(delivery.id)]


@pytest.fixture
def sent(monkeypatch):
    """The notification messages queued (delivery IDs), in order."""
    from tasks_app import tasks as celery_tasks

    queued = []
    monkeypatch.setattr(celery_tasks.notification_send, "delay", queued.append)
    return queued


def test_a_waiting_delivery_is_queued_once_however_many_ticks_pass(
    task, email, sent, django_capture_on_commit_callbacks, aws_endpoint, aws_failure
):
    from tasks_app.services.refresh import refresh_tick

    aws_failure(ECR, "AccessDeniedException")
    with django_capture_on_commit_callbacks(execute=True):
        task_run(task=task, trigger="manual", actor=SYSTEM)
    delivery = NotificationDelivery.objects.get()
    assert sent == [str(delivery.id)]

    # The message waits in the broker (a refresh wave ahead of it): ticks leave it be.
    start = timezone.now()
    for minute in range(1, 10):
        with django_capture_on_commit_callbacks(execute=True):
            refresh_tick(at=start + timedelta(minutes=minute))
    assert sent == [str(delivery.id)]

    # The broker lost it: once the queue claim runs out, a tick queues it again.
    later = start + notifications.QUEUE_LEASE + timedelta(seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        refresh_tick(at=later)
    assert sent == [str(delivery.id)] * 2
    # Both messages arrive: one attempt is made, the other finds nothing to do.
    assert notification_send(delivery_id=delivery.id) == "sent"
    assert notification_send(delivery_id=delivery.id) is None
    assert len(mail.outbox) == 1


def test_a_failed_attempt_is_queued_again_when_its_retry_is_due(
    task, email, sent, django_capture_on_commit_callbacks, aws_endpoint, aws_failure, settings
):
    from tasks_app.services.refresh import refresh_tick

    settings.EMAIL_BACKEND = "tests.services.test_notifications.RefusingBackend"
    aws_failure(ECR, "AccessDeniedException")
    with django_capture_on_commit_callbacks(execute=True):
        task_run(task=task, trigger="manual", actor=SYSTEM)
    delivery = NotificationDelivery.objects.get()
    assert notification_send(delivery_id=delivery.id) == "pending"
    delivery.refresh_from_db()
    assert delivery.queued_until is None  # the attempt took the message's claim
    with django_capture_on_commit_callbacks(execute=True):
        refresh_tick(at=delivery.next_attempt_at + timedelta(seconds=1))
    assert sent == [str(delivery.id)] * 2


class RefusingBackend:
    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server refused")


def test_email_that_cannot_be_sent_is_skipped_without_a_message(
    task, sent, django_capture_on_commit_callbacks, aws_endpoint, aws_failure, settings
):
    from tasks_app.services.refresh import refresh_tick

    aws_failure(ECR, "AccessDeniedException")
    with django_capture_on_commit_callbacks(execute=True):
        task_run(task=task, trigger="manual", actor=SYSTEM)
    assert sent == []
    assert NotificationDelivery.objects.get().state == "skipped"

    # One recorded while a mail server was configured, waiting when it is taken away.
    waiting = NotificationDelivery.objects.create(
        team=task.job.plan.team,
        change=TaskStatusChange.objects.get(),
        channel="email",
        next_attempt_at=timezone.now(),
    )
    with django_capture_on_commit_callbacks(execute=True):
        refresh_tick()
    assert sent == []
    waiting.refresh_from_db()
    assert (waiting.state, waiting.next_attempt_at) == ("skipped", None)
    assert "ECRPORTAL_EMAIL_HOST" in waiting.last_error
