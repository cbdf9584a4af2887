"""Plans, jobs, scopes and input variables (SPEC §2)."""

import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.utils.timezone import now

from tasks_app.lib.crypto import EncryptedTextField, plain
from tasks_app.models.teams import Team

plan_key_validator = RegexValidator(
    r"\A[A-Z][A-Z0-9]{1,9}-[A-Z][A-Z0-9]{1,9}\Z",
    "Enter a plan key of the form PROJECT-PLAN: two parts of 2 to 10 capital letters "
    "and digits, each starting with a letter, e.g. WEB-BUILD.",
)
job_key_validator = RegexValidator(
    r"\A[A-Z][A-Z0-9]{1,9}\Z",
    "Enter a job key of 2 to 10 capital letters and digits starting with a letter, e.g. JOB1.",
)
variable_key_validator = RegexValidator(
    r"\A[A-Za-z][A-Za-z0-9_.-]{0,99}\Z",
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
        return plain(self.secret_value) if self.masked else self.value
