"""Notifications of task status changes (SPEC §7): e-mail and per-team webhooks."""

import uuid

from django.db import models
from django.utils.timezone import now

from tasks_app.models.tasks import TaskStatusChange
from tasks_app.models.teams import Team


class NotificationDelivery(models.Model):
    """One notification of one status change over one channel, with its attempts.

    Pending deliveries are sent by a worker; next_attempt_at doubles as a lease
    (compare-and-set) so that one attempt runs at a time and a killed worker's
    attempt is made again. queued_until is the claim of the message that waits in the
    broker: while it holds, no tick queues the delivery again.
    """

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"  # every attempt failed
        SKIPPED = "skipped", "Skipped"  # nothing to send to; last_error says why

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="notifications")
    change = models.ForeignKey(
        TaskStatusChange, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # The webhook URL, or the addresses, at the time of the change.
    target = models.CharField(max_length=2048, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    queued_until = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["team", "-created"], name="delivery_team_created")]

    def __str__(self):
        return f"{self.channel} {self.state} for {self.change}"
