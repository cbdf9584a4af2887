from django.core.management.base import BaseCommand, CommandError

from tasks_app.lib.crypto import EncryptionError
from tasks_app.services.encryption import encryption_keys_rotate


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored secret under the first key of ECRPORTAL_ENCRYPTION_KEYS. "
        "To retire a key: put the new key first, keep the old one after it, run this "
        "command, then remove the old key."
    )

    def handle(self, *args, **options):
        try:
            rotated = encryption_keys_rotate()
        except EncryptionError as e:
            raise CommandError(f"{e} Nothing was changed.") from None
        for item in rotated:
            self.stdout.write(f"{item.label}: {item.count} re-encrypted")
        total = sum(item.count for item in rotated)
        self.stdout.write(self.style.SUCCESS(f"Done: {total} secrets now use the newest key."))
