"""Workload identity (issue 17): CI jobs that authenticate with their CI system's OIDC ID
token instead of a stored API token, and the keys the portal signs its own ID tokens with
for AWS (web-identity connectors)."""

import re
import uuid
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.timezone import now

from tasks_app.lib.crypto import EncryptedTextField
from tasks_app.models.plans import Job, Plan
from tasks_app.models.teams import Team

# Characters no issuer URL, key ID or claim the portal looks up may hold: checked before any
# lookup (PostgreSQL refuses NUL in text; the others have no business in an identifier).
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def issuer_key(url: str) -> str:
    """An issuer URL as compared: scheme and host in lower case, no trailing slash (so that
    https://PORTAL.example.com/ is the same issuer as https://portal.example.com)."""
    parts = urlsplit(url.strip())
    return (
        parts._replace(scheme=parts.scheme.lower(), netloc=parts.netloc.lower())
        .geturl()
        .rstrip("/")
    )


def is_own_issuer(url: str) -> bool:
    """The portal's own issuer (ECRPORTAL_ISSUER_URL): its ID tokens are for AWS (web-identity
    connectors), never a way into the portal's API."""
    return issuer_key(url) == issuer_key(str(settings.ISSUER_URL))


OWN_ISSUER_REFUSAL = (
    "This is the portal's own issuer: its ID tokens are for AWS (web-identity connectors), "
    "never a way into the portal's API."
)


class TrustedIssuer(models.Model):
    """An OIDC issuer whose ID tokens the portal may accept (registered by a superuser);
    its keys come from its discovery document's jwks_uri, over https."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    issuer = models.CharField(
        max_length=500, unique=True, error_messages={"unique": "This issuer is trusted already."}
    )
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

    def clean(self):
        """What may be trusted, wherever it is registered (the portal's page, the admin)."""
        self.issuer = self.issuer.strip().rstrip("/")
        parts = urlsplit(self.issuer)
        if (
            parts.scheme != "https"
            or not parts.hostname
            or parts.query
            or parts.fragment
            or CONTROL_CHARACTERS.search(self.issuer)
        ):
            raise ValidationError(
                {"issuer": "Enter the issuer's https URL, e.g. https://gitlab.example.com."}
            )
        if settings.OIDC_ISSUERS and self.issuer not in settings.OIDC_ISSUERS:
            raise ValidationError(
                {
                    "issuer": "ECRPORTAL_OIDC_ISSUERS pins the issuers this portal may trust: "
                    + ", ".join(settings.OIDC_ISSUERS)
                    + "."
                }
            )
        if is_own_issuer(self.issuer):
            raise ValidationError({"issuer": OWN_ISSUER_REFUSAL})


# Claims that name who owns a CI job (GitHub Actions, GitLab), and the subject. A rule must
# pin one of them, or it admits jobs of anyone who can run jobs at the issuer.
OWNER_CLAIMS = (
    "repository",
    "repository_owner",
    "repository_id",
    "repository_owner_id",
    "project_path",
    "project_id",
    "namespace_path",
    "namespace_id",
    "sub",
)
_WILDCARD = re.compile(r"[*?\[]")
UNPINNED_REFUSAL = (
    "Pin an owner: at least one of "
    + ", ".join(OWNER_CLAIMS)
    + " must be exact, or have its wildcard only after the owner and a slash "
    "(repository=acme/*, sub=repo:acme/*). A rule of wildcards alone (repository=*, sub=*) "
    "would let in every job of the issuer: with GitHub, any repository in the world."
)


def pins_owner(claim: str, pattern: str) -> bool:
    """Whether a condition ties the rule to one owner: an owner claim whose pattern is exact,
    or whose first wildcard comes after "<owner>/" (the owner's name may follow a
    "type:" prefix, as in GitHub's sub "repo:acme/web:...")."""
    if claim not in OWNER_CLAIMS or not pattern.strip():
        return False
    wildcard = _WILDCARD.search(pattern)
    if wildcard is None:
        return True
    literal = pattern[: wildcard.start()]
    owner = literal.split("/", 1)[0].rsplit(":", 1)[-1]
    return "/" in literal and bool(owner.strip())


def conditions_problem(conditions) -> str | None:
    """Why these conditions may not make a trust rule, in words; None when they may."""
    if not conditions or not isinstance(conditions, dict):
        return 'Name at least one claim, e.g. {"repository": "acme/web"}.'
    for claim, pattern in conditions.items():
        if not isinstance(pattern, str) or not claim.strip() or not pattern.strip():
            return f"The condition on {claim!r} must be a claim name and a text pattern."
        if CONTROL_CHARACTERS.search(claim + pattern):
            return f"The condition on {claim!r} holds a control character."
    if not any(pins_owner(claim, pattern) for claim, pattern in conditions.items()):
        return UNPINNED_REFUSAL
    return None


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
    # Set when the person who made the rule was deactivated: the rule admits nothing until a
    # portal administrator enables it again, under their own name (the Users page).
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["plan__key", "name"]

    def __str__(self):
        return f"{self.name} ({self.issuer.name} → {self.plan.key})"

    @property
    def admits(self) -> bool:
        """Whether the rule lets any token in: enabled, and its conditions pin an owner
        (rules saved before that check was made stay in the list and admit nothing)."""
        return self.disabled_at is None and conditions_problem(self.conditions) is None

    def clean(self):
        if self.plan_id is not None:
            self.team_id = self.plan.team_id  # the plan's team owns the rule
        if self.job is not None and self.job.plan_id != self.plan_id:
            raise ValidationError({"job": "Choose a job of the rule's plan."})
        problem = conditions_problem(self.conditions)
        if problem:
            raise ValidationError({"conditions": problem})
        if CONTROL_CHARACTERS.search(self.audience):
            raise ValidationError({"audience": "The audience holds a control character."})


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
