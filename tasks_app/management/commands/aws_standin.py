import signal
import threading
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError


def realistic_ecr_tokens(hours: float, on_call=None, *, install: bool = True):
    """Make moto's ECR tokens expire `hours` after they are issued, as AWS's do.

    on_call(), if given, is called for every GetAuthorizationToken moto answers.
    Returns the replacement handler; install=False leaves installing it to the
    caller (tests install it with monkeypatch, to undo it afterwards).
    """
    from moto.ecr import responses

    original = responses.ECRResponse.get_authorization_token

    def realistic(response):
        if on_call is not None:
            on_call()
        result = original(response)
        expires = datetime.now(UTC) + timedelta(hours=hours)
        for data in result.result["authorizationData"]:
            data["expiresAt"] = expires.replace(microsecond=0)
        return result

    if install:
        responses.ECRResponse.get_authorization_token = realistic
    return realistic


class Command(BaseCommand):
    help = (
        "Run a local AWS stand-in for trying the portal without an AWS account: moto's "
        "server on 127.0.0.1, whose ECR tokens expire like AWS's, 12 hours after they are "
        "issued (moto's own say 2015-01-01). Used by make demo; needs the dev dependencies."
    )

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=5000)
        parser.add_argument("--token-hours", type=float, default=12.0)

    def handle(self, *args, port, token_hours, **options):
        try:
            from moto.server import ThreadedMotoServer
        except ImportError:
            raise CommandError(
                "moto is a development dependency: make demo installs it (make test too)."
            ) from None

        realistic_ecr_tokens(token_hours)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self.stdout.write(
            f"AWS stand-in (moto) on http://127.0.0.1:{port}; ECR tokens last {token_hours:g} h."
        )
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        server.stop()
