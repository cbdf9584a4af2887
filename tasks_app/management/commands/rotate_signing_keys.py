from django.core.management.base import BaseCommand, CommandError
from django.utils.timezone import now

from tasks_app.actor import COMMAND_LINE
from tasks_app.models import SigningKey
from tasks_app.services.issuer import (
    DEFAULT_OVERLAP_SECONDS,
    SigningKeyRefused,
    signing_key_retire,
    signing_key_rotate,
)


class Command(BaseCommand):
    help = (
        "Rotate the keys the portal signs its ID tokens for AWS with (web-identity "
        "connectors). The new key is published at once and signs after --overlap seconds; "
        "the old ones stay published until their last tokens have expired and --overlap "
        "more seconds have passed. --list shows the keys; --retire KID stops publishing one "
        "now (a key that may have leaked)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--overlap",
            type=int,
            default=DEFAULT_OVERLAP_SECONDS,
            help=f"Seconds between publishing the new key and signing with it, and again "
            f"before the old keys disappear (default {DEFAULT_OVERLAP_SECONDS}).",
        )
        parser.add_argument("--list", action="store_true", help="List the keys, change none.")
        parser.add_argument("--retire", metavar="KID", help="Stop publishing this key now.")

    def handle(self, *args, overlap, list, retire, **options):
        if list:
            self._list()
            return
        try:
            if retire:
                key = signing_key_retire(kid=retire, actor=COMMAND_LINE)
                self.stdout.write(self.style.SUCCESS(f"Key {key.kid} is no longer published."))
                return
            key = signing_key_rotate(overlap=overlap, actor=COMMAND_LINE)
        except SigningKeyRefused as e:
            raise CommandError(str(e)) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"New signing key {key.kid}: published now, signs from "
                f"{key.signs_from:%Y-%m-%dT%H:%M:%SZ}."
            )
        )
        self._list()

    def _list(self):
        at = now()
        keys = SigningKey.objects.order_by("created")
        if not keys:
            self.stdout.write("No signing key yet: the first is made when first needed.")
        live = [k for k in keys if k.retires_at is None or k.retires_at > at]
        signing = max(
            (k for k in live if k.signs_from <= at),
            key=lambda k: (k.signs_from, k.kid),
            default=None,
        )
        for key in keys:
            if key not in live:
                state = f"retired {key.retires_at:%Y-%m-%dT%H:%M:%SZ}"
            elif key.signs_from > at:
                state = f"published, signs from {key.signs_from:%Y-%m-%dT%H:%M:%SZ}"
            else:
                state = "published, signing" if key == signing else "published, replaced"
            until = (
                f", published until {key.retires_at:%Y-%m-%dT%H:%M:%SZ}"
                if key.retires_at is not None and key.retires_at > at
                else ""
            )
            self.stdout.write(f"{key.kid}  {key.algorithm}  {state}{until}")
