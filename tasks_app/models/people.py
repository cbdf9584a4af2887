"""Invitations: how a person who has no account yet joins a team."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from tasks_app.models.teams import Role, Team


class Invitation(models.Model):
    """A team admin's invitation to one e-mail address. Its link is signed with the portal's
    secret key (tasks_app/services/people.py); the row decides whether it still works:
    once accepted, revoked or past expires_at, it does not."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created = models.DateTimeField(default=now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["team", "email"], name="invitation_team_email")]

    def __str__(self):
        return f"Invitation of {self.email} to {self.team} ({self.role})"

    @property
    def state(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at <= now():
            return "expired"
        return "pending"


class ExternalIdentity(models.Model):
    """A person's account at the identity provider (OIDC issuer and subject), linked to
    their portal account at the first single sign-on."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities"
    )
    issuer = models.CharField(max_length=500)
    subject = models.CharField(max_length=255)
    created = models.DateTimeField(default=now)
    last_login = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="identity_issuer_subject")
        ]

    def __str__(self):
        return f"{self.subject} at {self.issuer}"
