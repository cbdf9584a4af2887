"""API tokens for CI jobs (SPEC §8.4)."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from tasks_app.models.plans import Job, Plan
from tasks_app.models.teams import Team


class ApiToken(models.Model):
    """A bearer token for CI jobs (SPEC §8.4), bound to a plan or to one of its jobs.

    Only the SHA-256 of the token is stored: it is shown once, when created.
    """

    PREFIX = "ecrp_"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_tokens")
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="api_tokens")
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    # The first characters, to recognise a token in lists and logs.
    hint = models.CharField(max_length=16)
    created = models.DateTimeField(default=now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_from = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.name} ({self.hint}…)"

    @property
    def actor_name(self) -> str:
        """How the audit log and Runs name the token when it acts: "token:<hint> (<name>)"."""
        return f"token:{self.hint} ({self.name})"

    @property
    def binding(self) -> str:
        if self.job is not None:
            return f"job {self.plan.key}-{self.job.key}"
        return f"plan {self.plan.key}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now())
