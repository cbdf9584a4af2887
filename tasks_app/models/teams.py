"""Teams, people and what the portal records about them."""

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.timezone import now

from tasks_app.lib.crypto import EncryptedTextField


class Role(models.TextChoices):
    """A member's role in a team. Each role can do what the ones before it can."""

    VIEWER = "viewer", "Viewer"
    EDITOR = "editor", "Editor"
    ADMIN = "admin", "Admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: "Role") -> bool:
        return self.rank >= Role(needed).rank


slug_validator = RegexValidator(
    r"\A[a-z0-9]+(?:-[a-z0-9]+)*\Z",
    "Use lowercase letters, digits and single hyphens, e.g. platform-team.",
)


class Team(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    slug = models.CharField(max_length=50, unique=True, validators=[slug_validator])
    created = models.DateTimeField(default=now)
    # Granted by a superuser: the team may use the portal host's own AWS identity
    # (and only while ECRPORTAL_ALLOW_HOST_CREDENTIALS is on).
    host_credentials_allowed = models.BooleanField(
        default=False,
        help_text="Members may create connectors that use the portal host's own AWS identity.",
    )
    # Status-change notifications (SPEC §7): to the team's admins by e-mail, and
    # an optional webhook that receives JSON signed with HMAC-SHA256.
    notify_email = models.BooleanField(
        "E-mail the team's admins",
        default=True,
        help_text="When a task starts failing, expires or recovers.",
    )
    webhook_url = models.CharField("Webhook URL", max_length=2048, blank=True)
    webhook_secret = EncryptedTextField(blank=True, default="")
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="teams"
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "user"], name="membership_team_user_unique")
        ]
        ordering = ["team__name", "user__username"]

    def __str__(self):
        return f"{self.user} in {self.team} ({self.role})"


class Profile(models.Model):
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True
    )
    # Set for accounts created with a generated one-time password: the first
    # sign-in leads straight to the password change form.
    must_change_password = models.BooleanField(default=False)

    def __str__(self):
        return f"Profile of {self.user}"


class AuditEvent(models.Model):
    """Who did what, when and from where. Never holds a secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(default=now)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The username as given, kept when the account is deleted, and for failed
    # sign-ins that name no account at all.
    actor_name = models.CharField(max_length=150, blank=True)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    summary = models.CharField(max_length=500)
    changes = models.JSONField(default=dict, blank=True)
    address = models.GenericIPAddressField(null=True, blank=True)
    # For what may happen once only: a CI job's ID token is used once (a hash of its issuer
    # and jti), so the event that records the use is also what refuses a replay.
    once_key = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(fields=["action", "actor_name", "created"], name="audit_action_actor"),
            models.Index(fields=["action", "address", "created"], name="audit_action_address"),
            models.Index(fields=["team", "created"], name="audit_team_created"),
            models.Index(fields=["created"], name="audit_created"),
        ]

    def __str__(self):
        return f"{self.created:%Y-%m-%d %H:%M:%S} {self.action} {self.actor_name}"


class CanaryPing(models.Model):
    """One /readyz round trip: the web process writes it, a worker answers it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created = models.DateTimeField(default=now, db_index=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    answered_by = models.CharField(max_length=255, blank=True)

    def __str__(self):
        return f"Canary {self.id} ({'answered' if self.answered_at else 'waiting'})"
