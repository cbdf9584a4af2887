"""Notifying teams of status changes (SPEC §7): e-mail to admins, signed webhooks.

A change that is worth telling (failing, expired, recovered) creates one
delivery per channel, in the same transaction as the change. Workers send
them after the commit and retry failures with back-off; every attempt is kept
in the delivery's row, which the team page lists.
"""

import json
import logging
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils.timezone import now
from kombu.exceptions import OperationalError

from tasks_app.lib import metrics
from tasks_app.lib.celery_queue import NOTIFICATION_SEND, celery_task
from tasks_app.lib.crypto import EncryptionError
from tasks_app.lib.webhooks import WebhookError, webhook_post
from tasks_app.models import (
    Membership,
    NotificationDelivery,
    Role,
    TaskConfig,
    TaskStatusChange,
)
from tasks_app.rules.refresh_schedule import backoff

log = logging.getLogger(__name__)

EVENT = "task.status_changed"
Channel = NotificationDelivery.Channel
State = NotificationDelivery.State

_HEADLINES = {
    "failing": "is failing",
    "expired": "has expired",
    "recovered": "has recovered",
}


# How long a queued delivery's message is taken to wait in the broker (behind a refresh
# wave, say) before the ticks take it as lost and queue it again. A second message
# never sends twice: each attempt claims the delivery first.
QUEUE_LEASE = timedelta(minutes=10)


class _Skip(Exception):
    """Nothing to send to; the delivery is recorded as skipped, with the reason."""


def _unsendable(channel: str) -> str:
    """Why nothing over this channel can be sent whatever the delivery ("": it can be)."""
    if channel == Channel.EMAIL and not settings.EMAIL_ENABLED:
        return "E-mail is not configured (set ECRPORTAL_EMAIL_HOST)."
    return ""


def notifications_queue(
    *, changes: list[TaskStatusChange], tasks: dict | None = None
) -> list[NotificationDelivery]:
    """Create the deliveries for the changes worth telling (inside their transaction), one
    per channel of the task's team; they are sent after the commit. `tasks` (by ID, with
    their job, plan and team) saves loading those the caller holds. A channel that cannot
    send (e-mail without a mail server) is recorded as skipped, with no message queued."""
    news = [change for change in changes if change.kind]
    if not news:
        return []
    tasks = dict(tasks or {})
    missing = [change.task_id for change in news if change.task_id not in tasks]
    if missing:
        tasks.update(TaskConfig.objects.select_related("job__plan__team").in_bulk(missing))
    at = now()
    deliveries = []
    for change in news:
        change.task = tasks[change.task_id]
        team = change.task.job.plan.team
        channels = []
        if team.notify_email:
            channels.append((Channel.EMAIL, ""))
        if team.webhook_url:
            channels.append((Channel.WEBHOOK, team.webhook_url))
        for channel, target in channels:
            delivery = NotificationDelivery(
                team=team, change=change, channel=channel, target=target, next_attempt_at=change.at
            )
            if reason := _unsendable(channel):
                delivery.state, delivery.last_error = State.SKIPPED, reason
                delivery.next_attempt_at = None
            else:
                delivery.queued_until = at + QUEUE_LEASE
            deliveries.append(delivery)
    deliveries = NotificationDelivery.objects.bulk_create(deliveries)
    for delivery in deliveries:
        if delivery.state == State.PENDING:
            _send_after_commit(delivery_id=delivery.pk, queued_until=delivery.queued_until)
        else:  # skipped at once: counted as a delivery's outcome, as a sent one is
            metrics.delivery_counted(channel=str(delivery.channel), state=delivery.state)
    return deliveries


def notifications_enqueue_due(*, at=None, limit: int = 100) -> int:
    """Queue the deliveries whose attempt is due and that no message waits for (a retry,
    one a lost worker held, one whose message the broker lost or refused); returns how
    many. Each is claimed first (compare-and-set on queued_until), so a delivery waiting
    in the broker is queued once however many ticks pass. E-mail that cannot be sent is
    marked skipped instead."""
    at = at or now()
    if reason := _unsendable(Channel.EMAIL):
        skipped = NotificationDelivery.objects.filter(
            state=State.PENDING, channel=Channel.EMAIL, next_attempt_at__lte=at
        ).update(state=State.SKIPPED, last_error=reason, next_attempt_at=None, queued_until=None)
        metrics.delivery_counted(channel=Channel.EMAIL.value, state=State.SKIPPED, count=skipped)
    queued = 0
    until = at + QUEUE_LEASE
    for delivery_id in notifications_due(at=at, limit=limit):
        if (
            NotificationDelivery.objects.filter(pk=delivery_id, state=State.PENDING)
            .filter(_not_queued(at))
            .update(queued_until=until)
        ):
            _send_after_commit(delivery_id=delivery_id, queued_until=until)
            queued += 1
    return queued


def _not_queued(at) -> Q:
    return Q(queued_until=None) | Q(queued_until__lte=at)


def _send_after_commit(*, delivery_id, queued_until) -> None:
    """Queue one attempt after the current transaction commits.

    A broker that cannot take it is logged, not raised: the change is already
    committed (a person's Run now must not fail for it). The delivery's queue claim is
    given back, so the next refresh tick queues it again.
    """
    send = celery_task(NOTIFICATION_SEND)

    def enqueue():
        try:
            send.delay(str(delivery_id))
        except OperationalError as e:
            NotificationDelivery.objects.filter(pk=delivery_id, queued_until=queued_until).update(
                queued_until=None
            )
            log.warning(
                "Could not queue notification %s (%s); the next tick will.", delivery_id, e
            )

    transaction.on_commit(enqueue, robust=True)


def _webhook_secret(team) -> str:
    return team.webhook_secret.reveal() if team.webhook_secret else ""


def _admin_addresses(team) -> list[str]:
    return sorted(
        {
            m.user.email
            for m in Membership.objects.filter(team=team, role=Role.ADMIN, user__is_active=True)
            .exclude(user__email="")
            .select_related("user")
        }
    )


def _task_url(task) -> str:
    return str(settings.SITE_URL).rstrip("/") + reverse("task_detail", args=[task.id])


def notification_payload(change: TaskStatusChange, delivery_id: str) -> dict:
    """The JSON a webhook receives. It names the task; it never holds a credential."""
    task = change.task
    plan = task.job.plan
    return {
        "event": EVENT,
        "delivery": delivery_id,
        "kind": change.kind,
        "team": {"id": str(plan.team_id), "slug": plan.team.slug, "name": plan.team.name},
        "task": {
            "id": str(task.id),
            "name": str(task),
            "plan": plan.key,
            "job": task.job.key,
            "url": _task_url(task),
        },
        "previous": change.previous,
        "status": change.status,
        "at": change.at.isoformat(),
        "expires_at": change.expires_at.isoformat() if change.expires_at else None,
        "error": change.error,
    }


def _email(change: TaskStatusChange, addresses: list[str]) -> None:
    task = change.task
    job = task.job
    subject = (
        f"[ECR Portal] Task \u201c{task}\u201d of {job.plan.key}-{job.key} "
        + (_HEADLINES[change.kind])
    )
    lines = [
        f"The task \u201c{task}\u201d of job {job.plan.key}-{job.key} (team "
        f"{job.plan.team.name}) changed from {change.previous} to {change.status} "
        f"at {change.at:%Y-%m-%d %H:%M:%S} UTC.",
        "",
    ]
    if change.status == "failing" and change.expires_at:
        lines.append(
            f"The last good token is still served until {change.expires_at:%Y-%m-%d %H:%M} UTC."
        )
    elif change.status == "expired":
        lines.append("No valid token is left: CI jobs asking for it get HTTP 409.")
    elif change.kind == "recovered" and change.expires_at:
        lines.append(f"A new token is served, valid until {change.expires_at:%Y-%m-%d %H:%M} UTC.")
    if change.error:
        lines += ["", f"Last error: {change.error}"]
    lines += ["", _task_url(task)]
    send_mail(
        subject, "\n".join(lines), settings.DEFAULT_FROM_EMAIL, addresses, fail_silently=False
    )


def notification_claim(*, delivery_id, at=None) -> NotificationDelivery | None:
    """Take one attempt at a pending, due delivery (compare-and-set on next_attempt_at)."""
    at = at or now()
    seen = (
        NotificationDelivery.objects.filter(
            pk=delivery_id, state=State.PENDING, next_attempt_at__lte=at
        )
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    if seen is None:
        return None
    lease = at + timedelta(seconds=settings.WEBHOOK_TIMEOUT * 2 + 60)
    if not NotificationDelivery.objects.filter(
        pk=delivery_id, state=State.PENDING, next_attempt_at=seen
    ).update(next_attempt_at=lease, attempts=F("attempts") + 1, queued_until=None):
        return None
    return NotificationDelivery.objects.select_related(
        "team", "change__task__job__plan__team"
    ).get(pk=delivery_id)


def notification_send(*, delivery_id) -> str | None:
    """Make one attempt at a delivery; returns its state afterwards (None: not taken)."""
    delivery = notification_claim(delivery_id=delivery_id)
    if delivery is None:
        return None
    change = delivery.change
    fields: dict[str, object] = {"response_status": None, "last_error": ""}
    try:
        if delivery.channel == Channel.EMAIL:
            addresses = _admin_addresses(delivery.team)
            if reason := _unsendable(delivery.channel):
                raise _Skip(reason)
            if not addresses:
                raise _Skip("No admin of the team has an e-mail address.")
            fields["target"] = ", ".join(addresses)[:2048]
            _email(change, addresses)
        else:
            # To the team's webhook as it is now: one removed or replaced since this delivery
            # was queued gets nothing more (its host may be someone else's by now).
            if not delivery.team.webhook_url or delivery.team.webhook_url != delivery.target:
                raise _Skip("The team's webhook was removed or changed since this was queued.")
            body = json.dumps(notification_payload(change, str(delivery.pk))).encode()
            fields["response_status"] = webhook_post(
                url=delivery.target,
                secret=_webhook_secret(delivery.team),
                event=EVENT,
                delivery_id=str(delivery.pk),
                body=body,
            )
    except _Skip as e:
        fields.update(state=State.SKIPPED, last_error=str(e), next_attempt_at=None)
    except (WebhookError, EncryptionError, OSError) as e:
        message = getattr(e, "message", None) or str(e) or type(e).__name__
        fields.update(last_error=message[:500], response_status=getattr(e, "status", None))
        if delivery.attempts >= settings.NOTIFY_ATTEMPTS:
            fields.update(state=State.FAILED, next_attempt_at=None)
        else:
            fields["next_attempt_at"] = now() + backoff(delivery.attempts)
        log.warning(
            "Notification %s (%s) attempt %d failed: %s",
            delivery.pk,
            delivery.channel,
            delivery.attempts,
            message,
        )
    else:
        fields.update(state=State.SENT, sent_at=now(), next_attempt_at=None)
    NotificationDelivery.objects.filter(pk=delivery.pk).update(**fields)
    state = str(fields.get("state", State.PENDING))
    metrics.delivery_counted(channel=str(delivery.channel), state=state)
    return state


def notifications_due(*, at=None, limit: int = 100) -> list[str]:
    """Pending deliveries whose attempt is due (their first one, a retry, or a lost lease)
    and that no message in the broker waits for."""
    at = at or now()
    return [
        str(pk)
        for pk in NotificationDelivery.objects.filter(
            _not_queued(at), next_attempt_at__lte=at, state=State.PENDING
        )
        .order_by("next_attempt_at")
        .values_list("id", flat=True)[:limit]
    ]


def webhook_ping(*, team) -> int:
    """POST a signed "ping" to the team's webhook now; returns the status or raises."""
    if not team.webhook_url:
        raise WebhookError("The team has no webhook URL.")
    delivery_id = str(uuid.uuid4())
    body = {
        "event": "ping",
        "delivery": delivery_id,
        "team": {"id": str(team.id), "slug": team.slug, "name": team.name},
        "at": now().isoformat(),
    }
    return webhook_post(
        url=team.webhook_url,
        secret=_webhook_secret(team),
        event="ping",
        delivery_id=delivery_id,
        body=json.dumps(body).encode(),
    )
