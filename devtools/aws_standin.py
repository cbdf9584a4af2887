"""A local AWS stand-in for trying the portal without an AWS account (`make demo`).

    python -m devtools.aws_standin [--port 5000] [--token-hours 12]

moto's server on 127.0.0.1, whose ECR tokens expire like AWS's, `--token-hours` after
they are issued (moto's own say 2015-01-01). moto has no ECR Public: `EcrPublic` answers
its GetAuthorizationToken (us-east-1 alone, tokens for public.ecr.aws that expire alike).
Like AWS, it checks every request's key and signature (moto's IAM authentication): it knows
one IAM user, `demo`, whose access key is the AWS documentation's example (DEMO_KEY_ID,
DEMO_SECRET) and who may call sts:GetCallerIdentity, ecr:GetAuthorizationToken and, for ECR
Public, ecr-public:GetAuthorizationToken with sts:GetServiceBearerToken. Any other key ID
is answered InvalidClientTokenId, a wrong secret SignatureDoesNotMatch, as AWS does. Needs
the demo dependencies (requirements-demo.lock, which `make demo` installs).
"""

import argparse
import base64
import json
import logging
import secrets
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
            "Action": [
                "sts:GetCallerIdentity",
                "ecr:GetAuthorizationToken",
                "ecr-public:GetAuthorizationToken",
                "sts:GetServiceBearerToken",
            ],
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


class EcrPublic:
    """WSGI middleware: Amazon ECR Public's GetAuthorizationToken, which moto lacks.

    Answered as AWS does: in its JSON protocol (X-Amz-Target SpencerFrontendService.*), in
    us-east-1 alone (elsewhere UnsupportedCommandException), one authorization whose token
    is base64 of "AWS:<password>" and expires `hours` after it is issued, with no
    proxyEndpoint (the registry is public.ecr.aws). When moto authenticates requests, the
    signature is checked and the caller needs ecr-public:GetAuthorizationToken and
    sts:GetServiceBearerToken, as AWS requires. on_call(), if given, is called for every
    token issued."""

    TARGET = "SpencerFrontendService."
    REGION = "us-east-1"
    ACTIONS = ("ecr-public:GetAuthorizationToken", "sts:GetServiceBearerToken")

    def __init__(self, app, *, hours: float = 12.0, on_call=None):
        self.app, self.hours, self.on_call = app, hours, on_call

    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if not target.startswith(self.TARGET):
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        from werkzeug.exceptions import HTTPException

        try:
            status, answer = 200, self._answer(environ, target.removeprefix(self.TARGET), body)
        except HTTPException as e:  # moto's errors, its authentication's too: in JSON
            status = e.code or 500
            answer = {"__type": getattr(e, "error_type", "ServerException")}
            answer["message"] = getattr(e, "message", "")
        data = json.dumps(answer).encode()
        start_response(
            f"{status} {'OK' if status == 200 else 'Error'}",
            [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("Content-Length", str(len(data))),
                ("x-amzn-RequestId", secrets.token_hex(16)),
            ],
        )
        return [data]

    def _answer(self, environ, operation: str, body: bytes) -> dict:
        from moto.core.exceptions import JsonRESTError

        headers = {
            name[5:].replace("_", "-").title(): value
            for name, value in environ.items()
            if name.startswith("HTTP_")
        }
        for name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(name):
                headers[name.replace("_", "-").title()] = environ[name]
        scope = headers.get("Authorization", "").partition("Credential=")[2].split("/")
        region = scope[2] if len(scope) > 2 else ""
        self._authenticate(environ, headers, body, operation)
        if region != self.REGION:
            raise JsonRESTError(
                "UnsupportedCommandException", "The action isn't supported in this Region."
            )
        if operation != "GetAuthorizationToken":
            raise JsonRESTError(
                "UnsupportedCommandException", f"The stand-in does not answer {operation}."
            )
        if self.on_call is not None:
            self.on_call()
        password = secrets.token_urlsafe(48)
        expires = (datetime.now(UTC) + timedelta(hours=self.hours)).replace(microsecond=0)
        return {
            "authorizationData": {
                "authorizationToken": base64.b64encode(f"AWS:{password}".encode()).decode(),
                "expiresAt": expires.timestamp(),
            }
        }

    def _authenticate(self, environ, headers: dict, body: bytes, operation: str) -> None:
        from moto import settings
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.core.authorization import ActionAuthenticatorMixin
        from moto.iam.access_control import IAMRequest

        if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
            return  # moto's own rule: authentication is off (tests' default)
        path = environ.get("PATH_INFO") or "/"
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        for action in self.ACTIONS:
            name = action.partition(":")[2]
            request = IAMRequest(
                account_id=DEFAULT_ACCOUNT_ID,
                method=environ["REQUEST_METHOD"],
                path=path,
                data={},
                body=body,
                headers=headers,
                action=name,
            )
            request.check_signature()
            request._action = action  # the signing service's name is ecr-public for both
            request.check_action_permitted("*")


def serve(port: int, *, token_hours: float = 12.0, on_public_call=None):
    """moto's server app behind EcrPublic and JsonProtocolErrors on 127.0.0.1:port (0: one
    the system chooses), in a thread."""
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = JsonProtocolErrors(
        EcrPublic(
            DomainDispatcherApplication(create_backend_app),
            hours=token_hours,
            on_call=on_public_call,
        )
    )
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
    server = serve(args.port, token_hours=args.token_hours)
    print(
        f"AWS stand-in (moto) on http://127.0.0.1:{args.port}; "
        f"ECR tokens last {args.token_hours:g} h; it knows the access key {DEMO_KEY_ID}. "
        "ECR Public answers too (us-east-1).",
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
