"""ECR Portal settings, read from the environment.

Every variable is documented in README.md and .env.example. The embedded
defaults run the whole portal (web, worker, beat) on one machine with no
servers: SQLite and a file-system Celery broker under ``ECRPORTAL_DATA_DIR``.
"""

import logging
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

from ecrportal.env import (
    env_bool,
    env_choice,
    env_fernet_keys,
    env_float,
    env_int,
    env_list,
    env_str,
    env_team_map,
    env_url,
    secret_read,
)
from tasks_app.lib.log_context import JSON_FORMATTER

BASE_DIR = Path(__file__).resolve().parent.parent
# Settings read the environment and the data folder; they create nothing. `manage.py
# init_data` (run by make run and make test) creates the folder and the generated keys.
DATA_DIR = Path(env_str("ECRPORTAL_DATA_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)

# The address people use to reach the portal. Its scheme decides the
# transport-security defaults: an https URL turns on secure cookies, HSTS and
# the redirect to https.
SITE_URL = env_url("ECRPORTAL_SITE_URL", "http://127.0.0.1:8000")
SITE_NAME = env_str("ECRPORTAL_SITE_NAME", "ECR Portal")
_site = urlsplit(SITE_URL)
HTTPS = _site.scheme == "https"

SECRET_KEY = env_str("SECRET_KEY") or secret_read(DATA_DIR / "secret_key")

# Secrets at rest (connector keys, masked variables, tokens): the first key
# encrypts, every key decrypts. `manage.py rotate_encryption_keys` re-encrypts
# everything under the first. Default: the key manage.py init_data writes to the data folder.
ENCRYPTION_KEYS = env_fernet_keys("ECRPORTAL_ENCRYPTION_KEYS", file=DATA_DIR / "encryption_key")

ALLOWED_HOSTS = env_list(
    "ALLOWED_HOSTS", list(dict.fromkeys([str(_site.hostname), "127.0.0.1", "localhost"]))
)
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CSRF_FAILURE_VIEW = "tasks_app.views.errors.csrf_failure"  # JSON under /api/

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",
    "rest_framework",
    "drf_spectacular",
    "tasks_app",
]

MIDDLEWARE = [
    # First: an API request's latency and status as the client gets them.
    "tasks_app.middleware.ApiMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Log lines carry the request's ID and who acts (ECRPORTAL_LOG_FORMAT=json writes them).
    "tasks_app.middleware.RequestLogContextMiddleware",
    # Every view needs a signed-in user unless it is marked login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "tasks_app.middleware.PasswordChangeRequiredMiddleware",
    "tasks_app.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Control characters in addresses (400) and oversized bodies (413) stop here, before any
    # view reads them, and their answers still pass the headers' middleware above.
    "tasks_app.middleware.RequestGuardMiddleware",
]

ROOT_URLCONF = "ecrportal.urls"
WSGI_APPLICATION = "ecrportal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tasks_app.context_processors.portal",
            ],
        },
    },
]

# Form fields render through templates/django/forms/field.html.
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

# Database: SQLite under the data folder unless DATABASE_URL names another.
_SQLITE_OPTIONS = {
    # WAL lets the web, worker and beat processes read while one writes;
    # IMMEDIATE takes the write lock up front instead of failing mid-transaction.
    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
}
DATABASE_URL = env_str("DATABASE_URL")
# Seconds a process keeps its database connection between requests (0: a new one for
# each request, which costs more than the queries of an API read).
DB_CONN_MAX_AGE = env_int("ECRPORTAL_DB_CONN_MAX_AGE", 60, minimum=0)
if DATABASE_URL:
    try:
        _db = dj_database_url.parse(
            DATABASE_URL, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=True
        )
    except ValueError as e:
        raise ImproperlyConfigured(f"DATABASE_URL is not valid: {e}") from None
    if _db["ENGINE"] == "django.db.backends.sqlite3":
        _db["OPTIONS"] = {**_SQLITE_OPTIONS, **_db.get("OPTIONS", {})}
else:
    _db = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(DATA_DIR / "db.sqlite3"),
        "OPTIONS": _SQLITE_OPTIONS,
        "CONN_MAX_AGE": DB_CONN_MAX_AGE,
        "CONN_HEALTH_CHECKS": True,
    }
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so that worker and web processes started by the
    # integration tests share the test database.
    _db["TEST"] = {"NAME": str(DATA_DIR / "test-db.sqlite3")}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"


# The HTTP API (/api/v1/): bearer tokens for CI jobs, the session for people.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tasks_app.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "tasks_app.api.plumbing.handle_exception",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "tasks_app.api.authentication.FirstRenderer",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ECR Portal API",
    "DESCRIPTION": "Fresh Amazon ECR credentials for CI jobs, and the portal's configuration.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tasks_app.api.plumbing.document_errors",
    ],
}

# Seconds the API keeps a token lookup, and a task's variables, per web process.
# Revocations and new variables take effect within this time; expired values are
# never served. 0 reads the database on every request.
API_CACHE_SECONDS = env_int("ECRPORTAL_API_CACHE_SECONDS", 5, minimum=0, maximum=60)

# Failed sign-ins are throttled per account and per client address: so many per window,
# that many at once, then one more each window / that many (services/pacing.py's rate
# limits); throttled attempts never reach the password check.
LOGIN_FAILURES_PER_ACCOUNT = env_int("ECRPORTAL_LOGIN_FAILURES_PER_ACCOUNT", 5, minimum=1)
LOGIN_FAILURES_PER_ADDRESS = env_int("ECRPORTAL_LOGIN_FAILURES_PER_ADDRESS", 20, minimum=1)
LOGIN_THROTTLE_SECONDS = env_int("ECRPORTAL_LOGIN_THROTTLE_SECONDS", 900, minimum=1)
# How many reverse proxies in front of the portal append to X-Forwarded-For.
# 0 trusts no header and uses the socket's address.
TRUSTED_PROXY_COUNT = env_int("ECRPORTAL_TRUSTED_PROXY_COUNT", 0, minimum=0)

# The first admin, created at first start (manage.py ensure_admin).
ADMIN_USERNAME = env_str("ECRPORTAL_ADMIN_USERNAME", "admin")
ADMIN_EMAIL = env_str("ECRPORTAL_ADMIN_EMAIL", "")
ADMIN_PASSWORD = env_str("ECRPORTAL_ADMIN_PASSWORD")

# Single sign-on with OpenID Connect (authorization code flow with PKCE and a nonce, by
# mozilla-django-oidc; tasks_app/views/sso.py). Off unless an issuer is set. The provider's
# endpoints come from its discovery document, fetched on the first sign-in.
OIDC_ISSUER = env_url("ECRPORTAL_OIDC_ISSUER", None)
OIDC_ENABLED = OIDC_ISSUER is not None
OIDC_NAME = env_str("ECRPORTAL_OIDC_NAME", "single sign-on")
OIDC_RP_CLIENT_ID = env_str("ECRPORTAL_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_str("ECRPORTAL_OIDC_CLIENT_SECRET", "")
if OIDC_ENABLED and not (OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET):
    raise ImproperlyConfigured(
        "ECRPORTAL_OIDC_ISSUER is set: set ECRPORTAL_OIDC_CLIENT_ID and "
        "ECRPORTAL_OIDC_CLIENT_SECRET too (the portal's client at the identity provider)."
    )
OIDC_RP_SIGN_ALGO = env_choice(
    "ECRPORTAL_OIDC_SIGN_ALGO", "RS256", ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
)
OIDC_RP_SCOPES = " ".join(env_list("ECRPORTAL_OIDC_SCOPES", ["openid", "email", "profile"]))
if OIDC_ENABLED and "openid" not in OIDC_RP_SCOPES.split():
    raise ImproperlyConfigured("ECRPORTAL_OIDC_SCOPES must include openid.")
# Only people whose (verified) e-mail address is in one of these domains; empty: anyone the
# provider signs in.
OIDC_ALLOWED_DOMAINS = [d.lower() for d in env_list("ECRPORTAL_OIDC_ALLOWED_DOMAINS", [])]
OIDC_CREATE_USERS = env_bool("ECRPORTAL_OIDC_CREATE_USERS", True)
# Claim values that make someone a member of a team, e.g.
# "platform-admins=platform:admin,platform-devs=platform:editor" (team slug, role).
OIDC_TEAM_CLAIM = env_str("ECRPORTAL_OIDC_TEAM_CLAIM", "groups")
OIDC_TEAM_MAP = env_team_map("ECRPORTAL_OIDC_TEAM_MAP")
OIDC_USE_PKCE = True
OIDC_USE_NONCE = True
OIDC_TIMEOUT = env_int("ECRPORTAL_OIDC_TIMEOUT", 10, minimum=1, maximum=60)
OIDC_AUTHENTICATION_CALLBACK_URL = "oidc_authentication_callback"
LOGIN_REDIRECT_URL_FAILURE = "login"
# With local passwords off, only these portal administrators sign in with a password
# (break-glass accounts for when the provider is down); everyone else uses single sign-on.
LOCAL_PASSWORDS = env_bool("ECRPORTAL_LOCAL_PASSWORDS", True)
BREAK_GLASS_USERS = env_list("ECRPORTAL_BREAK_GLASS_USERS", [ADMIN_USERNAME])
if not LOCAL_PASSWORDS and not OIDC_ENABLED:
    raise ImproperlyConfigured(
        "ECRPORTAL_LOCAL_PASSWORDS=0 needs single sign-on: set ECRPORTAL_OIDC_ISSUER."
    )
# Workload identity (issue 17): CI jobs authenticate with their CI system's ID token.
# When set, only these issuers may be registered (comma-separated URLs).
OIDC_ISSUERS = env_list("ECRPORTAL_OIDC_ISSUERS", [])
# A CA bundle for issuers behind a private CA (a self-hosted GitLab, say); empty: the system's.
OIDC_CA_BUNDLE = env_str("ECRPORTAL_OIDC_CA_BUNDLE", "")
# The portal as an OIDC issuer for AWS (web-identity connectors): the public https address
# where AWS finds /.well-known/openid-configuration and jwks.json. Default: the site URL.
ISSUER_URL = env_url("ECRPORTAL_ISSUER_URL", SITE_URL) or SITE_URL
if urlsplit(ISSUER_URL).query or urlsplit(ISSUER_URL).fragment:
    raise ImproperlyConfigured(
        f"ECRPORTAL_ISSUER_URL={ISSUER_URL!r} is not valid: an issuer URL has no query or "
        "fragment, e.g. https://ecr-portal.example.com."
    )
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if OIDC_ENABLED:
    AUTHENTICATION_BACKENDS.append("tasks_app.views.sso.PortalOIDCBackend")

# Days an invitation link works, unless accepted or revoked first.
INVITATION_DAYS = env_int("ECRPORTAL_INVITATION_DAYS", 7, minimum=1, maximum=90)

SESSION_COOKIE_AGE = env_int("ECRPORTAL_SESSION_SECONDS", 12 * 3600, minimum=300)

# Transport security: on by default when the site URL is https.
SECURE_SSL_REDIRECT = env_bool("ECRPORTAL_SSL_REDIRECT", HTTPS)
# Health checks come from inside the host or cluster over plain http.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("ECRPORTAL_HSTS_SECONDS", 31536000 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("ECRPORTAL_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = env_bool("ECRPORTAL_HSTS_PRELOAD", HTTPS)
if env_bool("ECRPORTAL_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(env_str("ECRPORTAL_STATIC_ROOT", str(DATA_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# Celery (read by ecrportal/celery.py through the CELERY_ namespace).
# Default broker: a folder on disk, so one machine needs no server. Production: Redis.
# (Its host, unused, is named: without, kombu warns at every connection.)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost/")
_broker_scheme = urlsplit(CELERY_BROKER_URL).scheme
if _broker_scheme not in ("filesystem", "redis", "rediss", "memory"):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r} is not valid: expected filesystem:// "
        "or a redis:// or rediss:// URL."
    )
# Every task is killed after TASK_TIME_LIMIT seconds; a message that is not
# acknowledged within VISIBILITY_TIMEOUT is delivered again. The second must
# be longer, or long tasks would run twice.
CELERY_TASK_TIME_LIMIT = env_int("ECRPORTAL_TASK_TIME_LIMIT", 300, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 5
CELERY_VISIBILITY_TIMEOUT = env_int("ECRPORTAL_VISIBILITY_TIMEOUT", 3600, minimum=60)
if CELERY_VISIBILITY_TIMEOUT <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"ECRPORTAL_VISIBILITY_TIMEOUT ({CELERY_VISIBILITY_TIMEOUT}) must be longer than "
        f"ECRPORTAL_TASK_TIME_LIMIT ({CELERY_TASK_TIME_LIMIT})."
    )
if _broker_scheme == "filesystem":
    _broker_dir = DATA_DIR / "broker"  # its folders: manage.py init_data
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        "retry_on_timeout": True,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")
# Two queues, both consumed by every worker (a worker started without --queues takes
# every queue named here): "celery" for refreshes, notifications and e-mail; "quick" for
# the readiness canary and the refresh ticks, so that neither waits behind a refresh wave
# (/readyz would say "not ready" of a merely busy worker; ticks would come late).
CELERY_TASK_DEFAULT_QUEUE = "celery"
QUICK_QUEUE = "quick"
CELERY_TASK_QUEUES = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in (CELERY_TASK_DEFAULT_QUEUE, QUICK_QUEUE)
)
CELERY_TASK_ROUTES = {
    "tasks_app.tasks.canary": {"queue": QUICK_QUEUE},
    "tasks_app.tasks.refresh_tick": {"queue": QUICK_QUEUE},
}
# Seconds between two refresh ticks of beat (SPEC §7: at most 60).
REFRESH_TICK = env_int("ECRPORTAL_REFRESH_TICK", 30, minimum=1, maximum=60)
CELERY_BEAT_SCHEDULE = {
    "refresh-tick": {"task": "tasks_app.tasks.refresh_tick", "schedule": float(REFRESH_TICK)},
    "housekeeping": {"task": "tasks_app.tasks.housekeeping", "schedule": 3600.0},
}

# AWS. The portal host's own credentials (env, instance profile, ECS task role,
# EKS IRSA) are offered only when allowed here AND granted to a team by a superuser.
ALLOW_HOST_CREDENTIALS = env_bool("ECRPORTAL_ALLOW_HOST_CREDENTIALS", False)
# Endpoint overrides for VPC endpoints, LocalStack or a moto server: one for all
# services, and per service (STS, ECR) taking precedence.
AWS_ENDPOINT_URL = env_url("ECRPORTAL_AWS_ENDPOINT_URL", None)
AWS_ENDPOINT_URLS = {
    "sts": env_url("ECRPORTAL_AWS_ENDPOINT_URL_STS", None),
    "ecr": env_url("ECRPORTAL_AWS_ENDPOINT_URL_ECR", None),
}
# Seconds to wait for a connection and for an answer, and attempts per call
# (background work; interactive calls such as "Test connection" try once).
AWS_CONNECT_TIMEOUT = env_float("ECRPORTAL_AWS_CONNECT_TIMEOUT", 3, minimum=0.5, maximum=60)
AWS_READ_TIMEOUT = env_float("ECRPORTAL_AWS_READ_TIMEOUT", 5, minimum=1, maximum=120)
AWS_MAX_ATTEMPTS = env_int("ECRPORTAL_AWS_MAX_ATTEMPTS", 3, minimum=1, maximum=10)
# ecr:GetAuthorizationToken calls per second across every worker (a token bucket kept
# in the database, bursts of one second's worth); 0 = no limit. Scheduled refreshes wait
# for their turn; Run now and API runs count but never wait. A tick claims at most two
# ticks' worth of calls (services/claims.py).
AWS_CALL_RATE = env_float("ECRPORTAL_AWS_CALL_RATE", 20, minimum=0, maximum=10000)
# AWS sessions each process keeps (least recently used dropped first; at most twice as
# many clients): about 0.3 MiB each, clients as much again.
AWS_SESSIONS = env_int("ECRPORTAL_AWS_SESSIONS", 32, minimum=1, maximum=4096)

# Environment names of generated variables: this prefix + the key with dots as
# underscores, e.g. bamboo_custom_aws_ecr_password.
ENV_PREFIX = env_str("ECRPORTAL_ENV_PREFIX", "bamboo_")
if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ENV_PREFIX):
    raise ImproperlyConfigured(
        f"ECRPORTAL_ENV_PREFIX={ENV_PREFIX!r} is not valid: expected letters, digits and "
        "underscores, not starting with a digit."
    )

# Scheduled refresh (SPEC §7). A task is due when its token has less than
# MIN_REMAINING seconds left, less a random jitter of up to REFRESH_JITTER.
# Failures retry after BACKOFF_BASE * 2^(n-1) seconds (with jitter), at most
# BACKOFF_CAP. A claimed task is leased for LEASE seconds (then another worker
# may redo it).
MIN_REMAINING = env_int("ECRPORTAL_MIN_REMAINING", 6 * 3600, minimum=60)
REFRESH_JITTER = env_int("ECRPORTAL_REFRESH_JITTER", 300, minimum=0)
BACKOFF_BASE = env_int("ECRPORTAL_BACKOFF_BASE", 30, minimum=1)
BACKOFF_CAP = env_int("ECRPORTAL_BACKOFF_CAP", 1800, minimum=1)
REFRESH_LEASE = env_int("ECRPORTAL_REFRESH_LEASE", CELERY_TASK_TIME_LIMIT + 60, minimum=30)

# Notifications of status changes (SPEC §7). E-mail goes to each team's admins
# through this SMTP server; without ECRPORTAL_EMAIL_HOST none is sent (the
# delivery log says so). Webhooks must be https to a public address unless
# WEBHOOK_ALLOW_PRIVATE; WEBHOOK_CA_BUNDLE adds a private CA for their TLS.
EMAIL_HOST = env_str("ECRPORTAL_EMAIL_HOST", "")
EMAIL_ENABLED = bool(EMAIL_HOST)
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_ENABLED
    else "django.core.mail.backends.dummy.EmailBackend"
)
EMAIL_PORT = env_int("ECRPORTAL_EMAIL_PORT", 587, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("ECRPORTAL_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_str("ECRPORTAL_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("ECRPORTAL_EMAIL_STARTTLS", EMAIL_PORT == 587)
EMAIL_USE_SSL = env_bool("ECRPORTAL_EMAIL_SSL", EMAIL_PORT == 465)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured(
        "ECRPORTAL_EMAIL_STARTTLS and ECRPORTAL_EMAIL_SSL cannot both be on."
    )
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("ECRPORTAL_EMAIL_FROM", f"ECR Portal <ecr-portal@{_site.hostname!s}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
NOTIFY_ATTEMPTS = env_int("ECRPORTAL_NOTIFY_ATTEMPTS", 8, minimum=1, maximum=50)
WEBHOOK_ALLOW_PRIVATE = env_bool("ECRPORTAL_WEBHOOK_ALLOW_PRIVATE", False)
WEBHOOK_CA_BUNDLE = env_str("ECRPORTAL_WEBHOOK_CA_BUNDLE", "")
if WEBHOOK_CA_BUNDLE and not Path(WEBHOOK_CA_BUNDLE).is_file():
    raise ImproperlyConfigured(
        f"ECRPORTAL_WEBHOOK_CA_BUNDLE={WEBHOOK_CA_BUNDLE!r} is not valid: expected a PEM file."
    )
WEBHOOK_TIMEOUT = env_float("ECRPORTAL_WEBHOOK_TIMEOUT", 5, minimum=0.5, maximum=60)

# /readyz waits this long for a worker to answer the canary task.
READYZ_TIMEOUT_SECONDS = env_int("ECRPORTAL_READYZ_TIMEOUT", 3, minimum=1, maximum=25)

# /metrics (Prometheus' text format) answers only a scraper that sends this token as
# "Authorization: Bearer <token>"; unset, the endpoint is off (404).
METRICS_TOKEN = env_str("ECRPORTAL_METRICS_TOKEN")
if METRICS_TOKEN is not None and len(METRICS_TOKEN) < 24:
    raise ImproperlyConfigured(
        "ECRPORTAL_METRICS_TOKEN=(value hidden) is not valid: expected at least 24 characters "
        "(for example: openssl rand -hex 24)."
    )
# Where every process of this machine (web, worker, beat) writes its metrics, one file per
# process and kind (prometheus_client's multiprocess mode); /metrics merges them.
METRICS_DIR = Path(env_str("ECRPORTAL_METRICS_DIR", str(DATA_DIR / "metrics"))).resolve()
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(METRICS_DIR)

# plain: one readable line per record; json: one JSON object a line, for a log collector.
LOG_FORMAT = env_choice("ECRPORTAL_LOG_FORMAT", "plain", ["plain", "json"])
if LOG_FORMAT == "json":
    # Python's warnings through logging too, so that every line is one JSON object.
    logging.captureWarnings(True)
LOG_LEVEL = env_choice(
    "ECRPORTAL_LOG_LEVEL", "INFO", ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        # One JSON object a line: time, level, logger, message, and what the line is about
        # (request_id, actor, task: tasks_app/lib/log_context.py). python-json-logger.
        "json": JSON_FORMATTER,
    },
    "filters": {
        "context": {"()": "tasks_app.lib.log_context.ContextFilter"},
        # A request that failed because the database or broker is down: one line, no
        # traceback (tasks_app/lib/outages.py).
        "outages": {"()": "tasks_app.lib.outages.OutageLogFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"filters": ["outages"]},
        # SQL statements may carry secrets as parameters: never at DEBUG.
        "django.db.backends": {"level": "INFO"},
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
