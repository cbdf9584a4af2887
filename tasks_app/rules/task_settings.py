"""The rules of SPEC §4.1 for Amazon ECR credentials tasks that need only the task itself:
which settings apply to its source, and the form of each. Rules that need other rows or
AWS data are in tasks_app/services/validation.py. Each message names the expected form.
"""

import re

from django.core.exceptions import ValidationError

from tasks_app.lib import ecr_public
from tasks_app.rules.connector_settings import ROLE_ARN

REFERENCE = re.compile(r"\$\{bamboo\.(?P<key>[A-Za-z][A-Za-z0-9_.-]{0,99})\}")
REGISTRY_ID = re.compile(r"[0-9]{12}")
REGION_EXAMPLE = "ap-southeast-2"
NAMESPACE = re.compile(r"[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*")


def reference_key(reference: str) -> str | None:
    """The variable key of a ${bamboo.<key>} reference, or None if it is not one."""
    match = REFERENCE.fullmatch(reference.strip())
    return match["key"] if match else None


def task_clean(task) -> None:
    """Drop the settings that do not apply to the source or the registry (ECR Public: the
    region is us-east-1, no registry ID), then check the form of the rest."""
    Source = task.Source
    errors = {}

    if task.credentials_source == Source.CONNECTOR:
        task.role_arn = ""
        if task.connector_id:
            task.connector_variable = ""
        elif task.connector_variable:
            if reference_key(task.connector_variable) is None:
                errors["connector_variable"] = (
                    "Enter a variable reference of the form ${bamboo.<key>}, e.g. "
                    "${bamboo.aws.connector}; its value must be a connector ID."
                )
        else:
            errors["connector"] = "Choose a connector, or use a connector variable."
    else:
        task.connector, task.connector_variable = None, ""
        task.role_arn = task.role_arn.strip()
        if task.role_arn and not ROLE_ARN.fullmatch(task.role_arn):
            errors["role_arn"] = (
                "Enter a role ARN of the form arn:<partition>:iam::<12-digit account>:"
                "role/<path/name>, e.g. arn:aws:iam::123456789012:role/ecr-push, or leave it "
                "empty to use the host's role as it is."
            )

    if task.registry == task.Registry.PUBLIC:
        # ECR Public issues its tokens in us-east-1 alone, for its one registry host
        # (public.ecr.aws): the region is fixed and a registry ID does not apply.
        task.region, task.region_variable, task.registry_id = ecr_public.REGION, "", ""
    elif task.region_variable:
        task.region = ""
        if reference_key(task.region_variable) is None:
            errors["region_variable"] = (
                "Enter a variable reference of the form ${bamboo.<key>}, e.g. "
                "${bamboo.aws.region}; its value must be a region code such as ap-southeast-2."
            )
    elif not task.region:
        errors["region"] = "Choose a region, or use a region variable."

    task.registry_id = task.registry_id.strip()
    if task.registry_id and not REGISTRY_ID.fullmatch(task.registry_id):
        errors["registry_id"] = (
            "Enter the 12-digit AWS account ID of the registry, e.g. 123456789012, "
            "or leave it empty for the default registry of the credentials' account."
        )

    task.namespace = task.namespace.strip()
    if not NAMESPACE.fullmatch(task.namespace):
        errors["namespace"] = (
            "Enter dot-separated names that each start with a letter and contain letters, "
            "digits and underscores, e.g. custom.aws."
        )

    if errors:
        raise ValidationError(errors)
