"""A local AWS stand-in for trying the portal without an AWS account (`make demo`).

    python -m devtools.aws_standin [--port 5000] [--token-hours 12]

moto's server on 127.0.0.1, whose ECR tokens expire like AWS's, `--token-hours` after
they are issued (moto's own say 2015-01-01). Needs the development dependencies.
"""

import argparse
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.aws_standin", description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--token-hours", type=float, default=12.0)
    args = parser.parse_args(argv)
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        print(
            "The AWS stand-in needs moto, a development dependency: make demo installs it "
            "(pip install --require-hashes -r requirements-dev.lock).",
            file=sys.stderr,
        )
        return 2

    realistic_ecr_tokens(args.token_hours)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    print(
        f"AWS stand-in (moto) on http://127.0.0.1:{args.port}; "
        f"ECR tokens last {args.token_hours:g} h.",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
