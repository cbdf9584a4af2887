import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.utils.timezone import now

from tasks_app.crypto import EncryptedTextField


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
    r"^[a-z0-9]+(?:-[a-z0-9]+)*$",
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


class Connector(models.Model):
    """How to obtain AWS credentials (SPEC §3).

    Owned by a team; usable by the teams it is shared with.
    """

    class Credentials(models.TextChoices):
        ACCESS_KEY = "access_key", "Access key"
        HOST = "host", "Portal host's AWS identity (IAM role for EC2, ECS, EKS)"

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

    def __str__(self):
        return self.name

    def clean(self):
        from tasks_app.connector_rules import connector_clean

        connector_clean(self)

    @property
    def duration_or_default(self) -> int | None:
        from tasks_app.connector_rules import DURATIONS

        limits = DURATIONS.get(self.principal_type)
        if limits is None:
            return None
        return self.session_duration or limits.default


plan_key_validator = RegexValidator(
    r"^[A-Z][A-Z0-9]{1,9}-[A-Z][A-Z0-9]{1,9}$",
    "Enter a plan key of the form PROJECT-PLAN: two parts of 2 to 10 capital letters "
    "and digits, each starting with a letter, e.g. WEB-BUILD.",
)
job_key_validator = RegexValidator(
    r"^[A-Z][A-Z0-9]{1,9}$",
    "Enter a job key of 2 to 10 capital letters and digits starting with a letter, e.g. JOB1.",
)
variable_key_validator = RegexValidator(
    r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$",
    "Enter a variable key that starts with a letter and has letters, digits, dots, "
    "hyphens and underscores, e.g. aws.region.",
)


class Scope(models.TextChoices):
    LOCAL = "local", "Local: only in this job"
    RESULT = "result", "Result: in subsequent plan stages and deployment releases"


class Plan(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="plans")
    key = models.CharField(max_length=21, unique=True, validators=[plan_key_validator])
    name = models.CharField(max_length=100)
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["key"]

    def __str__(self):
        return f"{self.key} {self.name}"


class Job(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="jobs")
    key = models.CharField(max_length=10, validators=[job_key_validator])
    name = models.CharField(max_length=100)
    stage = models.PositiveSmallIntegerField(
        default=1, help_text="Stages run in order; jobs of later stages see result variables."
    )
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["stage", "key"]
        constraints = [models.UniqueConstraint(fields=["plan", "key"], name="job_plan_key_unique")]

    def __str__(self):
        return f"{self.plan.key}-{self.key} {self.name}"


MASKED_KEY_WORDS = ("password", "secret", "passphrase", "sshkey")


def is_masked_key(key: str) -> bool:
    """Keys naming a password, secret, passphrase or SSH key are masked and encrypted (SPEC §5)."""
    lowered = key.lower()
    return any(word in lowered for word in MASKED_KEY_WORDS)


class Variable(models.Model):
    """An input variable: global to a team, or of one plan (which overrides a global one)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="variables")
    plan = models.ForeignKey(
        Plan, null=True, blank=True, on_delete=models.CASCADE, related_name="variables"
    )
    key = models.CharField(max_length=100, validators=[variable_key_validator])
    value = models.TextField(blank=True)
    secret_value = EncryptedTextField(blank=True, default="")
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(
                fields=["team", "key"],
                condition=models.Q(plan__isnull=True),
                name="variable_global_key_unique",
            ),
            models.UniqueConstraint(
                fields=["plan", "key"],
                condition=models.Q(plan__isnull=False),
                name="variable_plan_key_unique",
            ),
        ]

    def __str__(self):
        return self.key

    @property
    def masked(self) -> bool:
        return is_masked_key(self.key)

    def set_value(self, value: str) -> None:
        if self.masked:
            self.value, self.secret_value = "", value
        else:
            self.value, self.secret_value = value, ""

    def plain_value(self) -> str:
        return self.secret_value.reveal() if self.masked and self.secret_value else self.value


class TaskConfig(models.Model):
    """An Amazon ECR Credentials Variables task (SPEC §4.1), one of a job's tasks."""

    class Source(models.TextChoices):
        CONNECTOR = "connector", "Identity Federation for AWS connector"
        HOST = "host", "IAM role for EC2 (the portal host's own role)"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tasks")
    position = models.PositiveIntegerField(default=0)
    description = models.CharField("Task description", max_length=255, blank=True)
    enabled = models.BooleanField(default=True)
    region = models.CharField(max_length=30, blank=True)
    region_variable = models.CharField(max_length=120, blank=True)
    registry_id = models.CharField("Registry ID", max_length=12, blank=True)
    namespace = models.CharField(max_length=100, default="custom.aws")
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.LOCAL)
    credentials_source = models.CharField(
        "AWS credentials source", max_length=10, choices=Source.choices, default=Source.CONNECTOR
    )
    connector = models.ForeignKey(
        Connector, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks"
    )
    connector_variable = models.CharField(max_length=120, blank=True)
    role_arn = models.CharField("Role ARN", max_length=2048, blank=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)
    # The latest outcome, kept here for lists and for the scheduler.
    expires_at = models.DateTimeField(null=True, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_ok = models.BooleanField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    # Scheduled refresh (SPEC §7): when the next refresh is due (null: never,
    # e.g. disabled), who holds it until when, and how many attempts in a row failed.
    refresh_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    failures = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["job", "position", "created"]

    def __str__(self):
        return self.description or f"Amazon ECR credentials ({self.namespace})"

    def clean(self):
        from tasks_app.task_rules import task_clean

        task_clean(self)

    @property
    def status(self) -> str:
        """disabled, never run, ok, failing (last run failed, token still valid) or expired."""
        if not self.enabled:
            return "disabled"
        if self.expires_at is None:
            return "failing" if self.last_run_ok is False else "never run"
        if self.expires_at <= now():
            return "expired"
        return "ok" if self.last_run_ok else "failing"


class TaskRun(models.Model):
    """One execution attempt of a task."""

    class Trigger(models.TextChoices):
        MANUAL = "manual", "Manual"
        SCHEDULE = "schedule", "Schedule"
        API = "api", "API"

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.ForeignKey(TaskConfig, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=10, choices=Trigger.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    started = models.DateTimeField(default=now)
    finished = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    region = models.CharField(max_length=30, blank=True)
    connector = models.ForeignKey(
        Connector, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error_class = models.CharField(max_length=100, blank=True)
    error_message = models.TextField(blank=True)
    aws_request_id = models.CharField(max_length=100, blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started"]
        indexes = [models.Index(fields=["task", "-started"], name="run_task_started")]

    def __str__(self):
        return f"{self.task} {self.started:%Y-%m-%d %H:%M} {self.outcome}"


class VariableResult(models.Model):
    """A variable a task generated (SPEC §5), visible by its scope."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.ForeignKey(TaskConfig, on_delete=models.CASCADE, related_name="results")
    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(TaskRun, null=True, on_delete=models.SET_NULL, related_name="+")
    key = models.CharField(max_length=200)
    value = models.TextField(blank=True)
    secret_value = EncryptedTextField(blank=True, default="")
    masked = models.BooleanField(default=False)
    scope = models.CharField(max_length=10, choices=Scope.choices)
    expires_at = models.DateTimeField()
    updated = models.DateTimeField(default=now)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.UniqueConstraint(fields=["task", "key"], name="result_task_key_unique")
        ]
        indexes = [
            models.Index(fields=["plan", "scope"], name="result_plan_scope"),
            models.Index(fields=["job", "scope"], name="result_job_scope"),
        ]

    def __str__(self):
        return self.key

    def plain_value(self) -> str:
        return self.secret_value.reveal() if self.masked else self.value

    @property
    def expired(self) -> bool:
        return self.expires_at <= now()


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
    def binding(self) -> str:
        return f"job {self.plan.key}-{self.job.key}" if self.job_id else f"plan {self.plan.key}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now())
