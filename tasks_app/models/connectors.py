"""AWS connectors (SPEC §3)."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from tasks_app.lib.crypto import EncryptedTextField
from tasks_app.models.teams import Team
from tasks_app.rules.connector_settings import DURATIONS, connector_clean


class Connector(models.Model):
    """How to obtain AWS credentials (SPEC §3).

    Owned by a team; usable by the teams it is shared with.
    """

    class Credentials(models.TextChoices):
        ACCESS_KEY = "access_key", "Access key"
        HOST = "host", "Portal host's AWS identity (IAM role for EC2, ECS, EKS)"
        # The portal's own signed ID token, exchanged by sts:AssumeRoleWithWebIdentity:
        # nothing secret is stored for it (issue 17).
        WEB_IDENTITY = "web_identity", "Web identity: the portal's own OIDC token, no stored key"

    class Principal(models.TextChoices):
        PROVIDED = "provided", "Use the credentials as they are"
        ASSUMED_ROLE = "assumed_role", "Assume a role (sts:AssumeRole)"
        FEDERATED_USER = "federated_user", "Federated user (sts:GetFederationToken)"
        SESSION_TOKEN = "session_token", "Session token (sts:GetSessionToken)"

    class Partition(models.TextChoices):
        AWS = "aws", "AWS (aws)"
        CHINA = "aws-cn", "AWS China (aws-cn)"
        GOVCLOUD = "aws-us-gov", "AWS GovCloud (US) (aws-us-gov)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="connectors")
    name = models.CharField(max_length=100)
    credentials = models.CharField(
        max_length=20, choices=Credentials.choices, default=Credentials.ACCESS_KEY
    )
    access_key_id = models.CharField(max_length=128, blank=True)
    secret_access_key = EncryptedTextField(blank=True, default="")
    principal_type = models.CharField(
        max_length=20, choices=Principal.choices, default=Principal.PROVIDED
    )
    role_arn = models.CharField(max_length=2048, blank=True)
    external_id = models.CharField(max_length=1224, blank=True)
    session_duration = models.PositiveIntegerField(null=True, blank=True)
    session_policy = models.TextField(blank=True)
    set_source_identity = models.BooleanField(default=False)
    partition = models.CharField(max_length=12, choices=Partition.choices, default=Partition.AWS)
    shared_with = models.ManyToManyField(Team, blank=True, related_name="shared_connectors")
    unattended_use = models.BooleanField(default=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    last_test_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["team", "name"], name="connector_team_name_unique")
        ]

    # The settings people choose (SPEC §3), in the form's order: what the form and the API
    # edit. The audit trail records all but the secret and the sharing (recorded apart).
    SETTINGS = (
        "name",
        "partition",
        "credentials",
        "access_key_id",
        "secret_access_key",
        "principal_type",
        "role_arn",
        "external_id",
        "set_source_identity",
        "session_duration",
        "session_policy",
        "shared_with",
        "unattended_use",
    )

    def __str__(self):
        return self.name

    def principal_display(self) -> str:
        """How the connector obtains its credentials, in the portal's words (its list and
        page): a web identity assumes its role with the portal's ID token, not sts:AssumeRole."""
        if self.credentials == self.Credentials.WEB_IDENTITY:
            return "Assume a role with the portal's ID token (sts:AssumeRoleWithWebIdentity)"
        return self.get_principal_type_display()

    @property
    def web_identity_subject(self) -> str:
        """The `sub` of the ID tokens the portal signs for this connector, which the role's
        trust policy names."""
        return f"connector:{self.pk}"

    def clean(self):
        connector_clean(self)

    @property
    def duration_or_default(self) -> int | None:
        limits = DURATIONS.get(self.principal_type)
        if limits is None:
            return None
        return self.session_duration or limits.default
