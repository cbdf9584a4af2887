import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from tasks_app.services.issuer import discovery_document, issuer_url, jwks

NAMES = ("openid-configuration", "jwks.json")


class Command(BaseCommand):
    help = (
        "Write the portal's issuer documents (.well-known/openid-configuration and "
        ".well-known/jwks.json) into a folder, for a portal AWS cannot reach: publish the "
        "folder at ECRPORTAL_ISSUER_URL (an S3 bucket behind CloudFront, say), and again "
        "after each rotate_signing_keys, within its overlap."
    )

    def add_arguments(self, parser):
        parser.add_argument("folder", help="Where to write .well-known/ (made if missing).")

    def handle(self, *args, folder, **options):
        target = Path(folder) / ".well-known"
        try:
            target.mkdir(parents=True, exist_ok=True)
            documents = dict(zip(NAMES, (discovery_document(), jwks()), strict=True))
            for name, document in documents.items():
                (target / name).write_text(json.dumps(document, indent=2) + "\n")
        except OSError as e:
            raise CommandError(f"Cannot write into {target}: {e.strerror}.") from None
        keys = len(documents["jwks.json"]["keys"])
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {target / NAMES[0]} and {target / NAMES[1]} ({keys} key(s)); publish "
                f"them as {issuer_url()}/.well-known/… with Content-Type application/json."
            )
        )
