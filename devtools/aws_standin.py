"""A local AWS stand-in for trying the portal without an AWS account (`make demo`).

    python -m devtools.aws_standin [--port 5000] [--token-hours 12]

moto's server on 127.0.0.1, whose ECR tokens expire like AWS's, `--token-hours` after
they are issued (moto's own say 2015-01-01). Like AWS, it checks every request's key and
signature (moto's IAM authentication): it knows one IAM user, `demo`, whose access key is
the AWS documentation's example (DEMO_KEY_ID, DEMO_SECRET) and who may call
sts:GetCallerIdentity and ecr:GetAuthorizationToken. Any other key ID is answered
InvalidClientTokenId, a wrong secret SignatureDoesNotMatch, as AWS does. Needs the demo
dependencies (requirements-demo.lock, which `make demo` installs).
"""

import argparse
import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree

# The AWS documentation's example key, which demo_seed gives the demo connector
# (tests/management/test_demo_seed.py checks that both say the same).
DEMO_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
DEMO_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # noqa: S105 - AWS docs example
DEMO_USER_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["sts:GetCallerIdentity", "ecr:GetAuthorizationToken"],
            "Resource": "*",
        }
    ],
}


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


def require_signed_requests(key_id: str = DEMO_KEY_ID, secret: str = DEMO_SECRET) -> None:
    """Turn on moto's IAM authentication and create the one user it knows, with this key."""
    from moto import settings
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.iam.models import iam_backends

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0  # every request is authenticated
    iam = iam_backends[DEFAULT_ACCOUNT_ID]["aws"]
    iam.create_user("us-east-1", "demo")
    iam.put_user_policy("demo", "ecr-login", json.dumps(DEMO_USER_POLICY))
    key = iam.create_access_key("demo")
    # moto generates a random key; the demo's is the documented example.
    del iam.access_keys[key.physical_resource_id]
    key.access_key_id, key.secret_access_key = key_id, secret
    iam.access_keys[key.physical_resource_id] = key


class JsonProtocolErrors:
    """WSGI middleware: moto answers an authentication failure in XML whatever the
    service; AWS's JSON-protocol services (ECR: requests with X-Amz-Target) answer
    {"__type": code, "message": …}, which is what botocore parses for them."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if "HTTP_X_AMZ_TARGET" not in environ:
            return self.app(environ, start_response)
        captured = {}

        def capture(status, headers, exc_info=None):
            captured.update(status=status, headers=headers)
            return lambda data: None

        body = b"".join(self.app(environ, capture))
        status, headers = captured["status"], captured["headers"]
        if int(status.split()[0]) >= 400 and body.lstrip().startswith(b"<"):
            try:
                root = ElementTree.fromstring(body)  # noqa: S314 - moto's own answer
            except ElementTree.ParseError:
                root = None
            code = root.findtext(".//Code") if root is not None else None
            if code:
                body = json.dumps(
                    {"__type": code, "message": root.findtext(".//Message") or ""}
                ).encode()
                headers = [
                    (k, v)
                    for k, v in headers
                    if k.lower() not in ("content-type", "content-length")
                ]
                headers += [
                    ("Content-Type", "application/x-amz-json-1.1"),
                    ("Content-Length", str(len(body))),
                ]
        start_response(status, headers)
        return [body]


def serve(port: int):
    """moto's server app behind JsonProtocolErrors on 127.0.0.1:port, in a thread."""
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = JsonProtocolErrors(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", port, app, True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.aws_standin", description=__doc__)
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--token-hours", type=float, default=12.0)
    args = parser.parse_args(argv)
    try:
        import moto.server  # noqa: F401
    except ImportError:
        print(
            "The AWS stand-in needs moto's server: make demo installs it "
            "(pip install --require-hashes -r requirements-demo.lock).",
            file=sys.stderr,
        )
        return 2

    realistic_ecr_tokens(args.token_hours)
    require_signed_requests()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = serve(args.port)
    print(
        f"AWS stand-in (moto) on http://127.0.0.1:{args.port}; "
        f"ECR tokens last {args.token_hours:g} h; it knows the access key {DEMO_KEY_ID}.",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
