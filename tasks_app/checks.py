"""System checks (manage.py check, migrate): the keys a start needs, named with the remedy."""

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

REMEDY = "Run `manage.py init_data` (make run does) to generate it into ECRPORTAL_DATA_DIR"


@register("ecrportal")
def keys_check(app_configs: object, **kwargs: object) -> list[Error]:
    errors = []
    try:
        settings.SECRET_KEY  # noqa: B018 - Django raises when it is empty
    except ImproperlyConfigured:
        errors.append(
            Error(
                "No secret key: SECRET_KEY is not set and the data folder has none.",
                hint=f"{REMEDY}, or set SECRET_KEY.",
                id="ecrportal.E001",
            )
        )
    if not settings.ENCRYPTION_KEYS:
        errors.append(
            Error(
                "No encryption key: ECRPORTAL_ENCRYPTION_KEYS is not set and the data folder "
                "has none.",
                hint=f"{REMEDY}, or set ECRPORTAL_ENCRYPTION_KEYS.",
                id="ecrportal.E002",
            )
        )
    return errors
