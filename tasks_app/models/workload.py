"""Workload identity (issue 17): CI jobs that authenticate with their CI system's OIDC ID
token instead of a stored API token, and the keys the portal signs its own ID tokens with
for AWS (web-identity connectors)."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from tasks_app.crypto import EncryptedTextField
from tasks_app.models.plans import Job, Plan
from tasks_app.models.teams import Team


class TrustedIssuer(models.Model):
    """An OIDC issuer whose ID tokens the portal may accept (registered by a superuser);
    its keys come from its discovery document's jwks_uri, over https."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    issuer = models.CharField(max_length=500, unique=True)
    name = models.CharField(max_length=100)
    created = models.DateTimeField(default=now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return f"{self.name} ({self.issuer})"


class TrustRule(models.Model):
    """Which ID tokens act as a token of a plan (or of one of its jobs): those of the issuer,
    for the audience, whose claims match every condition (exact, or a glob with * and ?)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="trust_rules")
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="trust_rules")
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.CASCADE, related_name="trust_rules"
    )
    issuer = models.ForeignKey(TrustedIssuer, on_delete=models.CASCADE, related_name="rules")
    audience = models.CharField(max_length=300)
    # {claim: pattern}; at least one, e.g. {"repository": "acme/web", "ref": "refs/heads/main"}
    conditions = models.JSONField(default=dict)
    name = models.CharField(max_length=100)
    created = models.DateTimeField(default=now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["plan__key", "name"]

    def __str__(self):
        return f"{self.name} ({self.issuer.name} → {self.plan.key})"

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.plan_id is not None:
            self.team_id = self.plan.team_id  # the plan's team owns the rule
        if self.job is not None and self.job.plan_id != self.plan_id:
            raise ValidationError({"job": "Choose a job of the rule's plan."})
        if not self.conditions or not isinstance(self.conditions, dict):
            raise ValidationError(
                {"conditions": 'Name at least one claim, e.g. {"repository": "acme/web"}.'}
            )


class SigningKey(models.Model):
    """A key the portal signs its own ID tokens with, as an OIDC issuer that AWS trusts
    (web-identity connectors). Published in /.well-known/jwks.json from its creation until
    `retires_at`; the newest key whose `signs_from` has come signs. A rotation publishes the
    next key before it signs and keeps the old one published after it stops, so AWS never
    meets a token signed by a key it has not seen, nor loses one it still needs."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kid = models.CharField(max_length=64, unique=True)  # RFC 7638 thumbprint of the key
    algorithm = models.CharField(max_length=10, default="RS256")
    private_key = EncryptedTextField()  # PEM (PKCS #8)
    public_jwk = models.JSONField()
    created = models.DateTimeField(default=now)
    signs_from = models.DateTimeField(default=now)
    retires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-signs_from", "-created"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(retires_at__isnull=True)
                | models.Q(retires_at__gt=models.F("signs_from")),
                name="signing_key_retires_after_it_signs",
            )
        ]

    def __str__(self):
        return f"{self.algorithm} key {self.kid}"
