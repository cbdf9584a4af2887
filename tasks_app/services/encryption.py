"""Re-encryption of every stored secret under the newest key."""

from dataclasses import dataclass

from django.apps import apps
from django.db import transaction

from tasks_app.lib.crypto import EncryptedTextField, Secret, rotate


@dataclass(frozen=True)
class Rotated:
    label: str
    count: int


def encrypted_fields():
    """(model, field name) for every encrypted column of the project."""
    for model in apps.get_models():
        for field in model._meta.get_fields():
            if isinstance(field, EncryptedTextField):
                yield model, field.name


def encryption_keys_rotate() -> list[Rotated]:
    """Re-encrypt every secret under the first key of ECRPORTAL_ENCRYPTION_KEYS.

    All values are re-encrypted in memory first: if any cannot be decrypted
    (its key is missing), EncryptionError names it and nothing is written.
    Then every row is updated in one transaction.
    """
    plan = []
    for model, name in encrypted_fields():
        rows = model.objects.exclude(**{name: ""}).values_list("pk", name)
        what = f"{model._meta.label}.{name}"
        updates = [(pk, rotate(secret.token, what=f"{what} of {pk}")) for pk, secret in rows]
        plan.append((model, name, updates))

    with transaction.atomic():
        for model, name, updates in plan:
            for pk, token in updates:
                # A Secret is stored as the token it holds, not encrypted again.
                model.objects.filter(pk=pk).update(**{name: Secret(token)})
    return [Rotated(f"{m._meta.label}.{n}", len(u)) for m, n, u in plan]
