"""Amazon ECR credentials tasks, their runs and the variables they generate."""

import uuid

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from tasks_app.lib.crypto import EncryptedTextField
from tasks_app.models.connectors import Connector
from tasks_app.models.plans import Job, Scope
from tasks_app.rules.task_settings import task_clean


class Status(models.TextChoices):
    """What a task's variables are worth now (SPEC §7)."""

    NEVER_RUN = "never run", "never run"
    OK = "ok", "ok"
    FAILING = "failing", "failing"  # the last run failed; the last good token is still served
    EXPIRED = "expired", "expired"  # no valid token: the API answers 409
    DISABLED = "disabled", "disabled"


def task_status(*, enabled: bool, expires_at, last_run_ok, at=None) -> str:
    """The status of a task with these values, at this time."""
    if not enabled:
        return Status.DISABLED
    if expires_at is None:
        return Status.FAILING if last_run_ok is False else Status.NEVER_RUN
    if expires_at <= (at or now()):
        return Status.EXPIRED
    return Status.OK if last_run_ok else Status.FAILING


def status_filter(status: str, at=None) -> models.Q:
    """The tasks whose live status (task_status) is this one, as a query filter."""
    at = at or now()
    live = models.Q(enabled=True)
    never_failed = ~models.Q(last_run_ok=False)
    return {
        Status.DISABLED: models.Q(enabled=False),
        Status.EXPIRED: live & models.Q(credential__expires_at__lte=at),
        Status.OK: live & models.Q(credential__expires_at__gt=at, last_run_ok=True),
        Status.FAILING: live
        & (
            models.Q(credential__expires_at__gt=at) & ~models.Q(last_run_ok=True)
            | models.Q(credential=None, last_run_ok=False)
        ),
        Status.NEVER_RUN: live & models.Q(credential=None) & never_failed,
    }[Status(status)]


class Credential(models.Model):
    """One GetAuthorizationToken answer (SPEC §4.2), stored once, encrypted once, for every
    task of its credential group; each task derives its seven variables from it and its own
    namespace, registry and scope (tasks_app/services/variables.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # What obtained it: credentials source, connector or role, and region (never a secret).
    group = models.CharField(max_length=300)
    token = EncryptedTextField()  # base64 of "<username>:<password>", as AWS returned it
    username = models.CharField(max_length=100, default="AWS")
    expires_at = models.DateTimeField(db_index=True)
    proxy_endpoint = models.CharField(max_length=300)  # the credentials' default registry
    request_id = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(default=now)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return f"{self.group} until {self.expires_at:%Y-%m-%d %H:%M}"


class TaskConfig(models.Model):
    """An Amazon ECR Credentials Variables task (SPEC §4.1), one of a job's tasks."""

    class Source(models.TextChoices):
        CONNECTOR = "connector", "A connector (its access key, role or web identity)"
        HOST = "host", "The portal host's own AWS identity (IAM role for EC2, ECS, EKS)"

    class Registry(models.TextChoices):
        PRIVATE = "private", "Private (Amazon ECR: <account>.dkr.ecr.<region>.amazonaws.com)"
        PUBLIC = "public", "Public (Amazon ECR Public: public.ecr.aws)"

    class Access(models.TextChoices):
        PUSH_PULL = "push_pull", "Push and pull"
        PULL = "pull", "Pull only"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="tasks")
    position = models.PositiveIntegerField(default=0)
    description = models.CharField("Task description", max_length=255, blank=True)
    enabled = models.BooleanField(default=True)
    # Which registry the token is for (rules/task_settings.py): ECR Public fixes the region
    # to us-east-1 and takes no registry ID.
    registry = models.CharField(max_length=10, choices=Registry.choices, default=Registry.PRIVATE)
    region = models.CharField(max_length=30, blank=True)
    region_variable = models.CharField(max_length=120, blank=True)
    registry_id = models.CharField("Registry ID", max_length=12, blank=True)
    namespace = models.CharField(max_length=100, default="custom.aws")
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.LOCAL)
    credentials_source = models.CharField(
        "AWS credentials source", max_length=10, choices=Source.choices, default=Source.CONNECTOR
    )
    # Pull only: the token is obtained with a session policy that allows pulling alone
    # (tasks_app/lib/aws.py PULL_ONLY_POLICY); only for roles and federated users.
    access = models.CharField(max_length=10, choices=Access.choices, default=Access.PUSH_PULL)
    connector = models.ForeignKey(
        Connector, null=True, blank=True, on_delete=models.PROTECT, related_name="tasks"
    )
    connector_variable = models.CharField(max_length=120, blank=True)
    role_arn = models.CharField("Role ARN", max_length=2048, blank=True)
    created = models.DateTimeField(default=now)
    updated = models.DateTimeField(default=now)
    # The credential its variables come from (none: never fetched, or the namespace changed);
    # its expiry is the task's (`expires_at`), the one every page, answer and status reads.
    credential = models.ForeignKey(
        Credential, null=True, blank=True, on_delete=models.SET_NULL, related_name="tasks"
    )
    # The latest outcome, kept here for lists and for the scheduler.
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_run_ok = models.BooleanField(null=True, blank=True)
    last_error = models.CharField(max_length=1000, blank=True)
    # Scheduled refresh (SPEC §7): when the next refresh is due (null: never,
    # e.g. disabled), who holds it until when, and how many attempts in a row failed.
    refresh_due_at = models.DateTimeField(null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The claim that holds the lease: one credential group, one worker message (its ID).
    claim = models.UUIDField(null=True, blank=True, db_index=True, editable=False)
    failures = models.PositiveIntegerField(default=0)
    # The status as last recorded (TaskStatusChange); `status` is computed live.
    # The scheduler compares the two to record expiry and to notify.
    recorded_status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.NEVER_RUN
    )

    class Meta:
        ordering = ["job", "position", "created"]

    # The settings people choose (SPEC §4.1), in the reference document's order: what the
    # form and the API edit, and what the audit trail records of a change.
    SETTINGS = (
        "description",
        "enabled",
        "registry",
        "region",
        "region_variable",
        "registry_id",
        "namespace",
        "scope",
        "credentials_source",
        "connector",
        "connector_variable",
        "role_arn",
        "access",
    )

    # The settings that decide which credentials the task obtains (who asks AWS, where, for
    # what). A change to any of them drops what the task serves: a token fetched under the
    # old settings (push access, another account) is never served under the new ones.
    CREDENTIAL_SETTINGS = (
        "registry",
        "credentials_source",
        "connector_id",
        "connector_variable",
        "role_arn",
        "region",
        "region_variable",
        "registry_id",
        "access",
    )

    def __str__(self):
        return self.description or f"Amazon ECR credentials ({self.namespace})"

    @property
    def public(self) -> bool:
        """Whether the task's token is for Amazon ECR Public (public.ecr.aws)."""
        return self.registry == self.Registry.PUBLIC

    def credential_settings(self) -> tuple:
        return tuple(getattr(self, name) for name in self.CREDENTIAL_SETTINGS)

    def clean(self):
        if self.job_id is None:
            return  # the job field reports it; the rules need the job's team
        task_clean(self)

    @property
    def expires_at(self):
        """When the task's variables stop being valid: its credential's expiry (None: no
        credential). Lists load the credential with the task (select_related)."""
        credential = self.credential  # no query when there is none
        return credential.expires_at if credential is not None else None

    @property
    def serves_until(self):
        """When what the task serves stops being valid, as pages show it: its expiry, or
        None when it serves nothing (disabled, or no credential)."""
        return self.expires_at if self.enabled else None

    @property
    def status(self) -> str:
        """disabled, never run, ok, failing (last run failed, token still valid) or expired."""
        return task_status(
            enabled=self.enabled, expires_at=self.expires_at, last_run_ok=self.last_run_ok
        )

    # refresh_state() as of a page's time, set by the pages that show it (not a field).
    scheduler = ""

    def refresh_state(self, at) -> str:
        """Where the scheduler is with the task: "running" (a worker holds it), "queued" (due:
        the next tick takes it), "scheduled" (due later) or "" (never: disabled)."""
        if not self.enabled or self.refresh_due_at is None:
            return ""
        if self.lease_until is not None and self.lease_until > at:
            return "running"
        return "queued" if self.refresh_due_at <= at else "scheduled"


class CallRate(models.Model):
    """One rate limit shared by every process through the database (services/pacing.py):
    the pace of one kind of AWS call, or the failed sign-ins of one account or address. The
    time from which the next slot starts."""

    name = models.CharField(primary_key=True, max_length=50)
    next_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name}: next call from {self.next_at:%H:%M:%S.%f}"


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
    # Who asked for it, in the audit log's words (Actor.name): a person, an API token
    # ("token:<hint> (<name>)"), manage.py; empty for the scheduler's runs.
    actor_name = models.CharField(max_length=150, blank=True)
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
    # What answered a failed AWS call, raw (masked, capped: lib/aws.py ANSWER_LIMIT): the
    # run's details for whoever needs it; error_message holds the diagnosis people read.
    aws_answer = models.TextField(blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started"]
        indexes = [models.Index(fields=["task", "-started"], name="run_task_started")]

    def __str__(self):
        return f"{self.task} {self.started:%Y-%m-%d %H:%M} {self.outcome}"

    @property
    def by(self) -> str:
        """Who ran it, as the audit log names them: a person (by their name now), an API
        token, the command line; else the scheduler."""
        if self.actor_id is not None and self.actor is not None:
            return self.actor.get_username()
        return self.actor_name or "scheduler"


class TaskStatusChange(models.Model):
    """A change of a task's status (ok → failing → expired → ok), as it was recorded."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    task = models.ForeignKey(TaskConfig, on_delete=models.CASCADE, related_name="status_changes")
    previous = models.CharField(max_length=10, choices=Status.choices)
    status = models.CharField(max_length=10, choices=Status.choices)
    at = models.DateTimeField(default=now)
    # The run that caused it; none when a token simply ran out.
    run = models.ForeignKey(
        "TaskRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    error = models.CharField(max_length=1000, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [models.Index(fields=["task", "-at"], name="status_change_task_at")]

    def __str__(self):
        return f"{self.task}: {self.previous} → {self.status} at {self.at:%Y-%m-%d %H:%M}"

    @property
    def kind(self) -> str:
        """failing, expired or recovered (what a notification says), or "" (none)."""
        if self.status in (Status.FAILING, Status.EXPIRED):
            return self.status
        if self.status == Status.OK and self.previous in (Status.FAILING, Status.EXPIRED):
            return "recovered"
        return ""
