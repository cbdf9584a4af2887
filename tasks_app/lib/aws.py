"""Every AWS call of the portal goes through this module; boto3 is imported nowhere else.

- A ``Principal`` says how to obtain credentials (what a connector says, or the
  host's own identity plus an optional role to assume).
- Sessions are cached per process and principal (tasks_app/lib/caches.py), the
  ECRPORTAL_AWS_SESSIONS most recently used (and at most twice as many clients), so memory
  stays flat however many connectors there are. Temporary credentials from STS are
  botocore refreshable credentials: reused until near their expiry, then fetched again
  transparently.
  Clients are cached per session, service, region and retry mode.
- Timeouts are short, so that an unreachable endpoint fails in seconds.
- Failures raise ``AwsError`` with the AWS error code, the request ID and an
  explanation in plain words (``diagnose``, the one diagnosis of a failed call: pages,
  runs, the API and Test connection all show it). Whatever answered (AWS, or a proxy's
  HTML page) is kept raw, masked and capped, in ``AwsError.answer`` and in the log, never
  in the explanation.
"""

import base64
import copy
import functools
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus

import boto3
import botocore.loaders
import botocore.parsers
import botocore.session
from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from django.conf import settings

from tasks_app.lib import caches, ecr_public, metrics
from tasks_app.lib.crypto import Secret, plain
from tasks_app.lib.log_masking import mask, secret_register

logger = logging.getLogger("ecrportal.aws")

# The audience of the ID tokens a web-identity connector presents to STS, as AWS's
# identity providers expect it (the client ID of the IAM OIDC provider).
WEB_IDENTITY_AUDIENCE = "sts.amazonaws.com"
DEFAULT_REGION = {"aws": "us-east-1", "aws-cn": "cn-north-1", "aws-us-gov": "us-gov-west-1"}
ECR_MANAGED_POLICY = "AmazonEC2ContainerRegistryPowerUser"
# The managed policy that allows what a pull-only task's session policy keeps (and no push).
ECR_PULL_MANAGED_POLICY = "AmazonEC2ContainerRegistryReadOnly"
# The session policy of pull-only tasks: the token it yields can pull and cannot push.
PULL_ONLY_ACTIONS = (
    "ecr:GetAuthorizationToken",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchCheckLayerAvailability",
)
PULL_ONLY_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(PULL_ONLY_ACTIONS), "Resource": "*"}],
    },
    separators=(",", ":"),
)
# Amazon ECR Public (lib/ecr_public.py): its managed policies and policy documents.
ECR_PUBLIC_MANAGED_POLICY = "AmazonElasticContainerRegistryPublicPowerUser"
ECR_PUBLIC_PULL_MANAGED_POLICY = "AmazonElasticContainerRegistryPublicReadOnly"
# Pulling from ECR Public needs no permission; a token without the push actions pulls with
# the authenticated rate limits and cannot push.
PUBLIC_PULL_ONLY_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": list(ecr_public.AUTH_ACTIONS), "Resource": "*"}
        ],
    },
    separators=(",", ":"),
)
# ECR_PUBLIC_MANAGED_POLICY's document (v1, 2020-12-01).
ECR_PUBLIC_POLICY_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                *ecr_public.AUTH_ACTIONS,
                "ecr-public:BatchCheckLayerAvailability",
                "ecr-public:GetRepositoryPolicy",
                "ecr-public:DescribeRepositories",
                "ecr-public:DescribeRegistries",
                "ecr-public:DescribeImages",
                "ecr-public:DescribeImageTags",
                "ecr-public:GetRepositoryCatalogData",
                "ecr-public:GetRegistryCatalogData",
                "ecr-public:InitiateLayerUpload",
                "ecr-public:UploadLayerPart",
                "ecr-public:CompleteLayerUpload",
                "ecr-public:PutImage",
            ],
            "Resource": "*",
        }
    ],
}


def pull_only_policy(*, public: bool) -> str:
    """The session policy of a pull-only task's token, for ECR or ECR Public."""
    return PUBLIC_PULL_ONLY_POLICY if public else PULL_ONLY_POLICY


ECR_POLICY_DOCUMENT = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": [
                "ecr:GetAuthorizationToken",
                "ecr:BatchCheckLayerAvailability",
                "ecr:GetDownloadUrlForLayer",
                "ecr:GetRepositoryPolicy",
                "ecr:DescribeRepositories",
                "ecr:ListImages",
                "ecr:BatchGetImage",
                "ecr:InitiateLayerUpload",
                "ecr:UploadLayerPart",
                "ecr:CompleteLayerUpload",
                "ecr:PutImage",
            ],
            "Resource": "*",
        }
    ],
}


@dataclass(frozen=True)
class Principal:
    """How to obtain AWS credentials."""

    credentials: str  # "access_key" | "host" | "web_identity"
    principal_type: str = "provided"  # provided | assumed_role | federated_user | session_token
    access_key_id: str = ""
    secret_access_key: Secret | str | None = None
    role_arn: str = ""
    external_id: str = ""
    duration: int | None = None
    policy: str = ""
    set_source_identity: bool = False
    partition: str = "aws"
    # web_identity: the token's subject (part of the cache key) and what signs a fresh ID
    # token for a caller (the session name) each time STS is asked.
    web_identity_subject: str = ""
    token_source: Callable[[str], str] | None = field(
        default=None, compare=False, hash=False, repr=False
    )

    @property
    def default_region(self) -> str:
        return DEFAULT_REGION[self.partition]


@dataclass
class AwsError(Exception):
    """An AWS call failed. ``explanation`` is meant for people; it names no secret and
    holds no upstream markup. ``answer`` is what answered, raw (masked, capped): for the
    run's details and the log, never shown as the error."""

    operation: str
    code: str
    message: str
    explanation: str
    request_id: str = ""
    answer: str = ""

    def __str__(self):
        return self.explanation


@dataclass(frozen=True)
class Identity:
    account: str
    arn: str
    user_id: str


@dataclass(frozen=True)
class EcrAuthorization:
    token: str = field(repr=False)  # base64 of "<username>:<password>", as AWS returns it
    username: str
    password: str = field(repr=False)
    expires_at: datetime
    proxy_endpoint: str
    request_id: str = ""


def session_name(username: str | None) -> str:
    """RoleSessionName / SourceIdentity: who caused the call (2-64 of [\\w+=,.@-])."""
    name = f"ecrportal-{username}" if username else "ecrportal-scheduler"
    return "".join(ch if ch.isalnum() or ch in "_+=,.@-" else "-" for ch in name)[:64]


# --- sessions and clients --------------------------------------------------------------

# The sessions' lock; it also guards botocore's data loader, which sessions and clients share.
_lock = caches.aws_sessions_lock


@dataclass
class _CachedSession:
    session: boto3.Session
    key: tuple | None = None  # in caches.aws_sessions (None: a session of its own)
    clients: dict = field(default_factory=dict)


def cached_sessions() -> list[tuple[Principal, int]]:
    """The principals whose sessions this process keeps, with how many clients each holds."""
    with _lock:
        kept = copy.copy(caches.aws_sessions)  # reading the cache's entries would reorder them
        return [(key[0], len(cached.clients)) for key, cached in kept.items()]


def _endpoint_url(service: str) -> str | None:
    return settings.AWS_ENDPOINT_URLS.get(service) or settings.AWS_ENDPOINT_URL


def _config(*, interactive: bool) -> Config:
    return Config(
        connect_timeout=settings.AWS_CONNECT_TIMEOUT,
        read_timeout=settings.AWS_READ_TIMEOUT,
        retries={
            "mode": "standard",
            # total_max_attempts counts the first attempt; max_attempts would not.
            "total_max_attempts": 1 if interactive else settings.AWS_MAX_ATTEMPTS,
        },
        user_agent_appid="ecrportal",
    )


def _log_call(event_name=None, model=None, params=None, **kwargs):
    # Operation names only: parameters may hold policies or tokens.
    logger.debug("AWS call %s", event_name.removeprefix("before-call."))


# The raw answer to the current thread's last failed HTTP request, before botocore parses
# it (a parser may fail on it, or keep nothing of an HTML page): _call reads it.
_answers = threading.local()


def _keep_answer(response_dict=None, **kwargs):
    status = (response_dict or {}).get("status_code", 0)
    body = (response_dict or {}).get("body")
    if status >= 300:
        _answers.last = (status, body if isinstance(body, bytes) else b"")


# Registered on every session this module creates; tests may add their own.
EVENT_HANDLERS: list[tuple[str, object]] = [
    ("before-call", _log_call),
    ("before-parse", _keep_answer),
]


@functools.cache
def _loader():
    """botocore's data loader, shared by all sessions: each would otherwise find, read
    and parse the service models again (about 25 ms per new session)."""
    return botocore.loaders.create_loader()


def _new_session(*, botocore_session=None, **kwargs) -> boto3.Session:
    core = botocore_session or botocore.session.get_session()
    core.register_component("data_loader", _loader())
    with _lock:
        session = boto3.Session(botocore_session=core, **kwargs)
        # boto3 appends its own data folder to the loader's search path each time.
        paths = _loader().search_paths
        paths[:] = list(dict.fromkeys(paths))
    for event, handler in EVENT_HANDLERS:
        session.events.register(event, handler)
    return session


def _client(cached: _CachedSession, service: str, region: str, *, interactive: bool):
    key = (service, region, interactive)
    with _lock:
        client = cached.clients.get(key)
        if client is None:
            client = cached.clients[key] = cached.session.client(
                service,
                region_name=region,
                endpoint_url=_endpoint_url(service),
                config=_config(interactive=interactive),
            )
            if cached.key is not None and caches.aws_sessions.get(cached.key) is cached:
                caches.aws_sessions[cached.key] = cached  # weighed again, with its clients
        return client


class _Provider(CredentialProvider):
    METHOD = "ecrportal-sts"

    def __init__(self, credentials):
        self._credentials = credentials

    def load(self):
        return self._credentials


# The refusal of the host's identity while the deployment's switch is off: its code and
# reason, which the rule of use (tasks_app/policy/usability.py) gives in the same words.
HOST_NOT_ALLOWED = "HostCredentialsNotAllowed"
HOST_IDENTITY_OFF = (
    "off on this portal (ECRPORTAL_ALLOW_HOST_CREDENTIALS); a portal administrator can turn it on"
)


def _session(principal: Principal, *, caller: str, interactive: bool) -> _CachedSession:
    # The retry mode is part of the key: the session's own STS client refreshes
    # the credentials, and background work must not inherit the single attempt
    # of interactive calls.
    # The services check the team's grant of the host's own identity; this checks the
    # deployment's switch, before any cached session, so no path reaches it while it is off.
    if principal.credentials == "host" and not settings.ALLOW_HOST_CREDENTIALS:
        message = f"The portal host's own AWS identity is {HOST_IDENTITY_OFF}."
        raise AwsError("credentials", HOST_NOT_ALLOWED, "", message)
    key = (principal, caller, interactive)
    with _lock:
        cached = caches.aws_sessions.get(key)
    if cached is not None:
        return cached
    session = _build_session(principal, caller=caller, interactive=interactive)
    cached = _CachedSession(session, key)
    with _lock:
        caches.aws_sessions[key] = cached
    return cached


def _base_session(principal: Principal) -> boto3.Session:
    if principal.credentials == "access_key":
        return _new_session(
            aws_access_key_id=principal.access_key_id,
            aws_secret_access_key=plain(principal.secret_access_key),
        )
    return _new_session()  # the host's default credential chain


def _build_session(principal: Principal, *, caller: str, interactive: bool) -> boto3.Session:
    if principal.credentials == "web_identity" and principal.principal_type != "assumed_role":
        # Anything else would fall through to the host's own credential chain.
        raise ValueError("a web identity only assumes a role")
    base = _base_session(principal)
    if principal.principal_type == "provided":
        return base

    if principal.credentials == "web_identity":
        # sts:AssumeRoleWithWebIdentity is not signed: the ID token is the credential, and
        # the host's own credentials must never be reached for it.
        sts = base.client(
            "sts",
            region_name=principal.default_region,
            endpoint_url=_endpoint_url("sts"),
            config=_config(interactive=interactive).merge(Config(signature_version=UNSIGNED)),
        )
    else:
        sts = _client(
            _CachedSession(base), "sts", principal.default_region, interactive=interactive
        )
    fetch = _fetcher(principal, sts, caller=caller)
    metadata = fetch()
    duration = principal.duration or 3600
    credentials = RefreshableCredentials.create_from_metadata(
        metadata=metadata,
        refresh_using=fetch,
        method=_Provider.METHOD,
        # Refresh ahead of expiry, but not so far ahead that short sessions
        # (15 minutes) are fetched again on every call.
        advisory_timeout=min(15 * 60, duration // 3),
        mandatory_timeout=min(10 * 60, duration // 6),
    )
    core = botocore.session.get_session()
    core.register_component("credential_provider", CredentialResolver([_Provider(credentials)]))
    return _new_session(botocore_session=core)


def _fetcher(principal: Principal, sts, *, caller: str):
    """A function that obtains fresh temporary credentials for the principal."""
    kind = principal.principal_type
    params: dict = {}
    if principal.duration:
        params["DurationSeconds"] = principal.duration
    if kind == "assumed_role" and principal.credentials == "web_identity":
        operation, call = "sts:AssumeRoleWithWebIdentity", sts.assume_role_with_web_identity
        params.update(RoleArn=principal.role_arn, RoleSessionName=caller)
        if principal.policy:
            params["Policy"] = principal.policy
        if principal.token_source is None:
            raise ValueError("a web-identity principal needs a token source")
    elif kind == "assumed_role":
        operation, call = "sts:AssumeRole", sts.assume_role
        params.update(RoleArn=principal.role_arn, RoleSessionName=caller)
        if principal.external_id:
            params["ExternalId"] = principal.external_id
        if principal.set_source_identity:
            params["SourceIdentity"] = caller
        if principal.policy:
            params["Policy"] = principal.policy
    elif kind == "federated_user":
        operation, call = "sts:GetFederationToken", sts.get_federation_token
        params["Name"] = caller[:32]
        if principal.policy:
            params["Policy"] = principal.policy
        else:
            # Without a session policy a federated user may do nothing at all.
            arn = f"arn:{principal.partition}:iam::aws:policy/{ECR_MANAGED_POLICY}"
            params["PolicyArns"] = [{"arn": arn}]
    elif kind == "session_token":
        operation, call = "sts:GetSessionToken", sts.get_session_token
    else:
        raise ValueError(f"unknown principal type {kind!r}")

    def fetch() -> dict:
        if principal.token_source is not None and principal.credentials == "web_identity":
            # A new token for each exchange: the last one may have expired since.
            params["WebIdentityToken"] = principal.token_source(caller)
        response = _call(operation, principal, lambda: call(**params))
        c = response["Credentials"]
        secret_register(c["SecretAccessKey"])
        secret_register(c["SessionToken"])
        return {
            "access_key": c["AccessKeyId"],
            "secret_key": c["SecretAccessKey"],
            "token": c["SessionToken"],
            "expiry_time": c["Expiration"].astimezone(UTC).isoformat(),
        }

    return fetch


# --- calls -----------------------------------------------------------------------------


def caller_identity(
    principal: Principal, *, caller: str, region: str | None = None, interactive: bool = False
) -> Identity:
    region = region or principal.default_region
    # Building the session of a temporary-credentials principal already calls STS.
    session = _session(principal, caller=caller, interactive=interactive)
    sts = _client(session, "sts", region, interactive=interactive)
    response = _call("sts:GetCallerIdentity", principal, sts.get_caller_identity)
    return Identity(response["Account"], response["Arn"], response["UserId"])


def ecr_authorization(
    principal: Principal,
    *,
    caller: str,
    region: str,
    registry_id: str | None = None,
    public: bool = False,
    interactive: bool = False,
) -> EcrAuthorization:
    """ECR's GetAuthorizationToken in `region`; with `public`, ECR Public's, which is asked
    in us-east-1 whatever `region` says, knows no registry ID, answers one authorization
    (not a list) and no endpoint: its registry is public.ecr.aws."""
    session = _session(principal, caller=caller, interactive=interactive)
    if public:
        client = _client(session, "ecr-public", ecr_public.REGION, interactive=interactive)
        response = _call(
            "ecr-public:GetAuthorizationToken", principal, client.get_authorization_token
        )
        data = {**response["authorizationData"], "proxyEndpoint": ecr_public.ENDPOINT}
    else:
        ecr = _client(session, "ecr", region, interactive=interactive)
        kwargs = {"registryIds": [registry_id]} if registry_id else {}
        response = _call(
            "ecr:GetAuthorizationToken", principal, lambda: ecr.get_authorization_token(**kwargs)
        )
        data = response["authorizationData"][0]
    token = data["authorizationToken"]
    username, password = token_login(token)
    return EcrAuthorization(
        token=token,
        username=username,
        password=password,
        expires_at=data["expiresAt"].astimezone(UTC),
        proxy_endpoint=data["proxyEndpoint"],
        request_id=response.get("ResponseMetadata", {}).get("RequestId", ""),
    )


def token_login(token: str) -> tuple[str, str]:
    """The user name and password in an ECR authorization token (base64 of "user:password");
    the token and the password are masked in every log from now on."""
    username, _, password = base64.b64decode(token).decode().partition(":")
    secret_register(token)
    secret_register(password)
    return username, password


@functools.cache
def regions(service: str, partition: str) -> tuple[str, ...]:
    """Region codes of a partition where the service exists, from botocore's data.

    Cached: reading botocore's data costs over 100 ms, and it does not change
    while the process runs.
    """
    return tuple(sorted(boto3.Session().get_available_regions(service, partition_name=partition)))


PARTITIONS = tuple(DEFAULT_REGION)


def ecr_regions(partition: str | None = None) -> list[str]:
    """Region codes where Amazon ECR exists, of one partition or of all."""
    partitions = [partition] if partition else PARTITIONS
    return [region for p in partitions for region in regions("ecr", p)]


THROTTLE_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException"}
)
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})


def call_outcome(error: "AwsError | None") -> str:
    """A call's outcome as the AWS-calls metric counts it (a handful of values)."""
    if error is None:
        return "ok"
    if error.code in THROTTLE_CODES:
        return "throttled"
    if error.code in DENIED_CODES:
        return "denied"
    if error.code in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeout"):
        return "unreachable"
    if error.code.startswith("HTTP 5") or error.code in (
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServerException",
    ):
        return "server_error"
    return "client_error"


# The codes explain() has words of its own for, and the failures that reach no AWS answer:
# a failed run's cause in the metrics is one of these, or "other" (AWS's codes are many).
KNOWN_CODES = (
    THROTTLE_CODES
    | DENIED_CODES
    | {
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidSignatureException",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "ValidationError",
        "InvalidIdentityToken",
        "IDPCommunicationError",
        "IDPRejectedClaim",
        "RegionDisabledException",
        "InternalFailure",
        "InternalError",
        "ServiceUnavailable",
        "ServerException",
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeout",
        "NoCredentials",
        "Unreadable",
    }
)


def cause_label(code: str) -> str:
    """A failed call's diagnosis code as a metric label of bounded cardinality."""
    if code in KNOWN_CODES:
        return code
    if code.startswith("HTTP 5"):
        return "HTTP 5xx"
    if code.startswith("HTTP "):
        return "HTTP other"
    return "other"


def _call(operation: str, principal: Principal, fn):
    """Every AWS call goes through here: its errors diagnosed once, each call counted."""
    try:
        response = _call_diagnosed(operation, principal, fn)
    except AwsError as e:
        metrics.AWS_CALLS.labels(operation, call_outcome(e)).inc()
        raise
    metrics.AWS_CALLS.labels(operation, "ok").inc()
    return response


def _call_diagnosed(operation: str, principal: Principal, fn):
    _answers.last = None
    try:
        return fn()
    except ClientError as e:
        # botocore puts the error at the top when the document's root is <Error>.
        error = e.response.get("Error") or e.response
        request_id = e.response.get("ResponseMetadata", {}).get("RequestId", "")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise _failure(
            operation,
            principal,
            code=str(error.get("Code") or ""),
            message=str(error.get("Message") or ""),
            status=status,
            request_id=request_id,
        ) from None
    except (EndpointConnectionError, ConnectTimeoutError) as e:
        raise AwsError(operation, type(e).__name__, str(e), _unreachable(operation, e)) from None
    except ReadTimeoutError as e:
        url = getattr(e, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
        raise AwsError(
            operation,
            "ReadTimeout",
            str(e),
            f"{url} did not answer {operation} within {settings.AWS_READ_TIMEOUT:g} s.",
        ) from None
    except NoCredentialsError:
        raise AwsError(
            operation,
            "NoCredentials",
            "",
            "The portal host has no AWS credentials: none in its environment, shared "
            "configuration, instance profile, container role or web identity.",
        ) from None
    except (BotoCoreError, botocore.parsers.ResponseParserError, UnicodeDecodeError) as e:
        # ResponseParserError, or a body that is not even text (UnicodeDecodeError): what
        # answered was no AWS answer, and botocore's words quote it.
        if getattr(_answers, "last", None) is not None:
            raise _failure(operation, principal, code="", message="", status=None) from None
        words = plain_message(str(e)) or type(e).__name__
        explanation = f"{operation} failed: {words}"
        raise AwsError(operation, type(e).__name__, str(e), explanation) from None


# --- the diagnosis of a failed call ----------------------------------------------------

# How much of an answer is kept (the run's details, the log): AWS's error documents are under
# a kilobyte; this holds them whole and the head of any HTML page, and no more, since a
# failing task keeps one run per attempt.
ANSWER_LIMIT = 4000
# How far past the cap the answer is read to mask it: more than the longest secret (an STS
# session token is under 2 KB), so that none is cut in two before it is masked.
_MASK_MARGIN = 8192
# How long an upstream message may be to be shown among the portal's words.
MESSAGE_LIMIT = 600
_CODE = re.compile(r"[A-Za-z][A-Za-z0-9._:-]{0,99}")
_MARKUP = re.compile(r"<[!?/]?[A-Za-z]|&[#A-Za-z0-9]+;")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def plain_message(text: str) -> str:
    """Upstream words fit to show a person: plain text of one short paragraph, or ""
    when it is markup (XML, HTML), binary, a stack or too long to be a message."""
    text = " ".join(text.split())
    if (
        not text
        or len(text) > MESSAGE_LIMIT
        or _MARKUP.search(text)
        or _CONTROL.search(text)
        or "Traceback (most recent call last)" in text
    ):
        return ""
    return text


def _is_code(code: str) -> bool:
    """An AWS error code (not an HTTP status botocore gives when it found none)."""
    return bool(_CODE.fullmatch(code))


def _recognise(body: bytes) -> tuple[str, str] | None:
    """The AWS error code and message inside a body botocore could not read as the
    service's protocol (an XML error document from an XML service to a JSON client, or the
    reverse), through botocore's own parsers."""
    text = body[:65536].strip()
    if text.startswith(b"<"):
        parser: botocore.parsers.ResponseParser = botocore.parsers.QueryParser()
    elif text.startswith(b"{"):
        parser = botocore.parsers.JSONParser()
    else:
        return None
    try:
        parsed = parser.parse({"status_code": 400, "headers": {}, "body": text}, None)
    except Exception:  # whatever the parser makes of a hostile body
        return None
    error = parsed.get("Error") or parsed
    code = str(error.get("Code") or "").rpartition("#")[2]
    if not _is_code(code):
        return None
    return code, str(error.get("Message") or "")


def _answer_text(status: int, body: bytes) -> str:
    """The answer as it came, for the run's details and the log: masked, then capped (a
    secret that straddles the cap is masked whole, never kept in part)."""
    reason = _reason(status)
    window = body[: ANSWER_LIMIT + _MASK_MARGIN].decode("utf-8", errors="replace")
    # Control characters as escapes (\x00): PostgreSQL refuses NUL in text.
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", mask(window))
    more = f"\n… (cut; {len(body)} bytes in all)" if len(text) > ANSWER_LIMIT else ""
    return f"HTTP {status} {reason}\n{text[:ANSWER_LIMIT]}{more}".strip()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _body_kind(body: bytes) -> str:
    text = body.strip()[:200].lower()
    if not text:
        return "no body"
    if b"<html" in text or b"<!doctype html" in text:
        return "an HTML page"
    if text.startswith(b"<"):
        return "an XML document that is no AWS error"
    if text.startswith(b"{"):
        return "a JSON document that is no AWS error"
    return "a body that is no AWS answer"


def diagnose(
    operation: str,
    principal: Principal,
    *,
    code: str,
    message: str,
    status: int | None = None,
    body: bytes = b"",
) -> tuple[str, str, str]:
    """A failed call's (code, message, explanation): the one diagnosis every page, run, API
    answer and Test connection shows. The code and message are AWS's when they can be found,
    in botocore's reading or inside the body; the explanation holds no upstream markup."""
    if not _is_code(code) or not plain_message(message):
        found = _recognise(body) or _recognise(message.encode())
        if found:
            code, message = found
    if _is_code(code):
        return code, message, explain(operation, code, message, principal)
    if status is None:
        return "Unreadable", "", f"No AWS answer to {operation}: {_body_kind(body)}."
    what = f"HTTP {status} {_reason(status)}".strip() + f" with {_body_kind(body)}"
    if status >= 500:
        advice = (
            "AWS, or a proxy in between, failed; refreshes try again with back-off. If this "
            "lasts, check any proxy between the portal and AWS and the "
            "ECRPORTAL_AWS_ENDPOINT_URL setting."
        )
    else:
        advice = (
            "Something other than AWS answered: a proxy or firewall between the portal and "
            "AWS, or an ECRPORTAL_AWS_ENDPOINT_URL that names no AWS endpoint."
        )
    return f"HTTP {status}", "", f"No AWS answer to {operation}: {what}. {advice}"


def _failure(
    operation: str,
    principal: Principal,
    *,
    code: str,
    message: str,
    status: int | None,
    request_id: str = "",
) -> AwsError:
    """The AwsError of a call AWS (or something in between) refused; its raw answer logged."""
    kept = getattr(_answers, "last", None)
    _answers.last = None
    answer_status, body = kept if kept is not None else (status, b"")
    code, message, explanation = diagnose(
        operation, principal, code=code, message=message, status=answer_status, body=body
    )
    answer = _answer_text(answer_status, body) if answer_status else ""
    if answer:
        # The masking filter (log_masking) masks it again in the record, with the rest.
        logger.warning("%s failed (%s); the answer: %r", operation, code, answer)
    return AwsError(
        operation, code, plain_message(message), explanation, request_id, answer=answer
    )


def _unreachable(operation: str, error) -> str:
    url = getattr(error, "kwargs", {}).get("endpoint_url", "the AWS endpoint")
    if isinstance(error, ConnectTimeoutError):
        what = f"{url} did not accept a connection within {settings.AWS_CONNECT_TIMEOUT:g} s"
    else:
        what = f"Could not connect to {url}"
    return (
        f"{what} for {operation}. Check the network, any proxy, and the "
        "ECRPORTAL_AWS_ENDPOINT_URL setting."
    )


def explain(operation: str, code: str, message: str, principal: Principal) -> str:
    """AWS's error in plain words, with what to do about it. AWS's message is quoted only
    when it is plain words (``plain_message``)."""
    message = plain_message(message)
    said = f": {message.rstrip('.')}." if message else "."
    if code in ("InvalidClientTokenId", "UnrecognizedClientException"):
        return (
            f"AWS does not recognise the access key ID {principal.access_key_id or ''}: it is "
            f"mistyped, deleted or inactive, or belongs to another partition than "
            f"{principal.partition}."
        ).replace("  ", " ")
    if code in ("SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignatureException"):
        return (
            "The secret access key does not belong to this access key ID. "
            "Enter the secret access key again."
        )
    if code in ("ExpiredToken", "ExpiredTokenException"):
        if operation == "sts:AssumeRoleWithWebIdentity":
            return (
                "AWS says the portal's ID token has expired, though it was signed just now: "
                "check the clock of the portal host."
            )
        return "The temporary credentials have expired. Obtain new ones and try again."
    if code == "RequestExpired":
        return "AWS says the request expired: check the clock of the portal host."
    if code in DENIED_CODES:
        if operation == "ecr:GetAuthorizationToken":
            return (
                "The credentials work, but they may not call ecr:GetAuthorizationToken. "
                f"Attach the AWS managed policy {ECR_MANAGED_POLICY} (see the recommended "
                "policy) to the identity."
            )
        if operation == "ecr-public:GetAuthorizationToken":
            return (
                "The credentials work, but they may not get an ECR Public token, which needs "
                f"both {' and '.join(ecr_public.AUTH_ACTIONS)}. Attach the AWS managed policy "
                f"{ECR_PUBLIC_MANAGED_POLICY} (see the recommended policy) to the identity."
            )
        if operation == "sts:AssumeRoleWithWebIdentity":
            return (
                f"AWS refused to let the connector assume {principal.role_arn} with the "
                "portal's ID token. Check that the role's trust policy names the portal's "
                f"identity provider and allows the subject {principal.web_identity_subject} "
                f"with the audience {WEB_IDENTITY_AUDIENCE} (the connector page shows it)"
                + (", and allows sts:SetSourceIdentity" if principal.set_source_identity else "")
                + "."
            )
        if operation == "sts:AssumeRole":
            checks = ["the role's trust policy allows this principal to assume it"]
            if principal.external_id:
                checks.append("the trust policy expects this external ID")
            if principal.set_source_identity:
                checks.append("the trust policy allows sts:SetSourceIdentity")
            return (
                f"AWS refused to let the connector assume {principal.role_arn}. Check that "
                + ", and that ".join(checks)
                + "."
            )
        return f"AWS denied {operation}{said}"
    if code == "ValidationError" and "DurationSeconds" in message:
        return (
            f"AWS refused the session duration: {message} For roles, the duration may not "
            "exceed the role's maximum session duration."
        )
    if code in THROTTLE_CODES:
        return f"AWS is throttling {operation}; the call will be retried later."
    if code == "InvalidIdentityToken":
        return (
            f"AWS did not accept the portal's ID token{said} Check that the role's "
            "account has an IAM OpenID Connect identity provider for the portal's issuer "
            f"with the audience {WEB_IDENTITY_AUDIENCE}, and that AWS can reach the issuer's "
            "keys over https (the connector page shows both)."
        )
    if code == "IDPCommunicationError":
        return (
            "AWS could not fetch the portal's signing keys from its issuer URL"
            f"{said} The portal's /.well-known/ addresses must be reachable from the "
            "internet over https with a publicly trusted certificate."
        )
    if code == "IDPRejectedClaim":
        return f"AWS rejected a claim of the portal's ID token{said}"
    if code == "RegionDisabledException":
        return f"STS is not activated in this region for the account{said}"
    if code in ("InternalFailure", "InternalError", "ServiceUnavailable", "ServerException"):
        return f"AWS failed on {operation} ({code}); the call is tried again later."
    return f"AWS answered {operation} with {code}{said}"
