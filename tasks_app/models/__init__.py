"""The portal's models, one module per part of the domain."""

from tasks_app.models.connectors import Connector
from tasks_app.models.notifications import NotificationDelivery
from tasks_app.models.people import ExternalIdentity, Invitation
from tasks_app.models.plans import MASKED_KEY_WORDS, Job, Plan, Scope, Variable, is_masked_key
from tasks_app.models.tasks import (
    CallRate,
    Credential,
    Status,
    TaskConfig,
    TaskRun,
    TaskStatusChange,
    status_filter,
    task_status,
)
from tasks_app.models.teams import (
    AuditEvent,
    CanaryPing,
    Membership,
    Profile,
    Role,
    Team,
    slug_validator,
)
from tasks_app.models.tokens import ApiToken
from tasks_app.models.workload import SigningKey, TrustedIssuer, TrustRule

__all__ = [
    "MASKED_KEY_WORDS",
    "ApiToken",
    "AuditEvent",
    "CallRate",
    "CanaryPing",
    "Connector",
    "Credential",
    "ExternalIdentity",
    "Invitation",
    "Job",
    "Membership",
    "NotificationDelivery",
    "Plan",
    "Profile",
    "Role",
    "Scope",
    "SigningKey",
    "Status",
    "TaskConfig",
    "TaskRun",
    "TaskStatusChange",
    "Team",
    "TrustRule",
    "TrustedIssuer",
    "Variable",
    "is_masked_key",
    "slug_validator",
    "status_filter",
    "task_status",
]
