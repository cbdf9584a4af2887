import sys

from django.core.management.base import BaseCommand, CommandError

from tasks_app.identity.actor import COMMAND_LINE
from tasks_app.services.issuer import (
    DEFAULT_OVERLAP_SECONDS,
    SigningKeyRefused,
    signing_key_retire,
    signing_key_rotate,
    signing_keys_listed,
)


class Command(BaseCommand):
    help = (
        "Rotate the keys the portal signs its ID tokens for AWS with (web-identity "
        "connectors). The new key is published at once and signs after --overlap seconds; "
        "the old ones stay published until their last tokens have expired and --overlap "
        "more seconds have passed. --list shows the keys; --retire KID stops publishing one "
        "now (a key that may have leaked)."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # A key ID is a JWK thumbprint in base64url, which may start with "-": argparse
        # would take `--retire -Ab…` for two options. It is read as `--retire=-Ab…`.
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parse_args = parser.parse_args

        def parse(args=None, namespace=None):
            args = list(sys.argv[2:] if args is None else args)
            if "--retire" in args[:-1]:
                at = args.index("--retire")
                args[at : at + 2] = [f"--retire={args[at + 1]}"]
            return parse_args(args, namespace)

        parser.parse_args = parse  # type: ignore[method-assign]
        return parser

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
        listed = signing_keys_listed()
        if not listed:
            self.stdout.write("No signing key yet: the first is made when first needed.")
        when = "%Y-%m-%dT%H:%M:%SZ"
        for key, state in listed:
            text = {
                "signing": "published, signing",
                "next": f"published, signs from {key.signs_from.strftime(when)}",
                "replaced": "published, replaced",
                "retired": "retired",
            }[state]
            if key.retires_at is not None:
                verb = "retired" if state == "retired" else "published until"
                text += f", {verb} {key.retires_at.strftime(when)}"
            self.stdout.write(f"{key.kid}  {key.algorithm}  {text}")
