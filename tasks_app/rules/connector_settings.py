"""The rules of SPEC §3 for connectors that need only the connector itself. Each message
names the expected form. Rules that need other rows are in tasks_app/services/validation.py."""

import json
import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError

ACCESS_KEY_ID = re.compile(r"(AKIA|ASIA)[A-Z0-9]{16}")
SECRET_ACCESS_KEY = re.compile(r"[A-Za-z0-9/+=]{40}")
ROLE_ARN = re.compile(
    r"arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::(?P<account>\d{12}):"
    r"role/(?:[\w+=,.@-]+/)*[\w+=,.@-]{1,64}",
    re.ASCII,  # \d and \w as AWS means them: no other scripts' digits and letters
)
EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}", re.ASCII)
POLICY_MAX_PACKED = 2048


@dataclass(frozen=True)
class Limits:
    minimum: int
    maximum: int
    default: int
    noun: str


DURATIONS = {
    "assumed_role": Limits(900, 43200, 3600, "an assumed role"),
    "federated_user": Limits(900, 129600, 43200, "a federated user"),
    "session_token": Limits(900, 129600, 43200, "a session token"),
}

ROLE_ARN_EXAMPLE = "arn:aws:iam::123456789012:role/ecr-push"


def host_credentials_available(team) -> bool:
    return settings.ALLOW_HOST_CREDENTIALS and team is not None and team.host_credentials_allowed


def policy_packed(text: str) -> str:
    """The policy as AWS counts it: JSON without insignificant white space."""
    return json.dumps(json.loads(text), separators=(",", ":"))


def _policy_error(text: str) -> str | None:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as e:
        return f"Enter the policy as JSON: {e.msg} at line {e.lineno}, column {e.colno}."
    if not isinstance(document, dict):
        return 'Enter the policy as a JSON object, e.g. {"Version": "2012-10-17", ...}.'
    packed = len(policy_packed(text))
    if packed > POLICY_MAX_PACKED:
        return (
            f"The policy is {packed} characters without white space; "
            f"AWS accepts at most {POLICY_MAX_PACKED}."
        )
    return None


def connector_clean(connector) -> None:
    """Drop the settings that do not apply, then check the form of the rest (no other rows:
    the owner team's grant of the host's identity is checked by connector_validate).
    Raises ValidationError."""
    c = connector
    Principal, Credentials = c.Principal, c.Credentials

    # Fields hidden in the form are ignored: never stored, never checked.
    if c.credentials != Credentials.ACCESS_KEY:
        c.access_key_id, c.secret_access_key = "", ""
    if c.credentials == Credentials.WEB_IDENTITY:
        c.external_id = ""  # sts:AssumeRoleWithWebIdentity takes none
    if c.principal_type != Principal.ASSUMED_ROLE:
        c.role_arn, c.external_id, c.set_source_identity = "", "", False
    if c.principal_type in (Principal.PROVIDED, Principal.SESSION_TOKEN):
        c.session_policy = ""
    if c.principal_type == Principal.PROVIDED:
        c.session_duration = None

    errors = {}
    if c.credentials == Credentials.ACCESS_KEY:
        c.access_key_id = c.access_key_id.strip()
        if not ACCESS_KEY_ID.fullmatch(c.access_key_id):
            errors["access_key_id"] = (
                "Enter an access key ID: 20 capital letters and digits starting with AKIA "
                "(or ASIA), e.g. AKIAIOSFODNN7EXAMPLE."
            )
        secret = c.secret_access_key
        if not secret:
            errors["secret_access_key"] = "Enter the secret access key (40 characters)."
        elif isinstance(secret, str) and not SECRET_ACCESS_KEY.fullmatch(secret):
            errors["secret_access_key"] = (
                "Enter the secret access key: 40 characters of letters, digits, / + and =."
            )
    elif c.credentials == Credentials.HOST and c.principal_type in (
        Principal.FEDERATED_USER,
        Principal.SESSION_TOKEN,
    ):
        label = Principal(c.principal_type).label
        errors["principal_type"] = (
            f"{label} needs access-key credentials: AWS offers it to IAM users, "
            "not to the host's role. Choose an access key, or assume a role."
        )
    elif c.credentials == Credentials.WEB_IDENTITY and c.principal_type != Principal.ASSUMED_ROLE:
        errors["principal_type"] = (
            "A web identity is exchanged for a role's credentials "
            "(sts:AssumeRoleWithWebIdentity): choose Assume a role and enter its ARN."
        )

    if c.principal_type == Principal.ASSUMED_ROLE:
        c.role_arn = c.role_arn.strip()
        match = ROLE_ARN.fullmatch(c.role_arn)
        if not match:
            errors["role_arn"] = (
                f"Enter a role ARN of the form arn:<partition>:iam::<12-digit account>:"
                f"role/<path/name>, e.g. {ROLE_ARN_EXAMPLE}."
            )
        elif match["partition"] != c.partition:
            errors["role_arn"] = (
                f"This role is in partition {match['partition']}, but the connector uses "
                f"{c.partition}. Change one of them."
            )
        if c.external_id and not EXTERNAL_ID.fullmatch(c.external_id):
            errors["external_id"] = (
                "Enter an external ID of 2 to 1224 characters: "
                "letters, digits and _ + = , . @ : / -"
            )

    limits = DURATIONS.get(c.principal_type)
    duration = c.session_duration
    if limits and duration is not None and not limits.minimum <= duration <= limits.maximum:
        errors["session_duration"] = (
            f"Enter a duration from {limits.minimum} to {limits.maximum} seconds for "
            f"{limits.noun}, or leave it empty for {limits.default}."
        )

    if c.session_policy.strip():
        problem = _policy_error(c.session_policy)
        if problem:
            errors["session_policy"] = problem
    else:
        c.session_policy = ""

    if errors:
        raise ValidationError(errors)
