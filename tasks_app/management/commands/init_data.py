from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from ecrportal.env import env_str, fernet_key, random_secret_key, secret_file, secret_read


class Command(BaseCommand):
    help = (
        "Prepare the data folder (ECRPORTAL_DATA_DIR) for a first start: create it, the "
        "static files folder and the file-system broker's folders, and generate the secret "
        "key and the encryption key unless SECRET_KEY and ECRPORTAL_ENCRYPTION_KEYS are set. "
        "Generated keys are written once, with mode 0600, and kept afterwards."
    )
    # It runs before the keys exist, which the system checks ask for.
    requires_system_checks: list[str] = []

    def handle(self, *args, **options):
        data = settings.DATA_DIR
        folders = [data, settings.STATIC_ROOT, settings.METRICS_DIR]
        broker = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        folders += [broker[k] for k in ("data_folder_in", "control_folder") if k in broker]
        for folder in folders:
            Path(folder).mkdir(parents=True, exist_ok=True)
        made = []
        if not env_str("SECRET_KEY") and not secret_read(data / "secret_key"):
            secret_file(data / "secret_key", generate=random_secret_key)
            made.append("a secret key")
        if not settings.ENCRYPTION_KEYS:
            secret_file(data / "encryption_key", generate=fernet_key)
            made.append("an encryption key")
        if made and options["verbosity"] > 0:
            self.stdout.write(f"Generated {' and '.join(made)} in {data} (mode 0600).")
