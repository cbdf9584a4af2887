"""Every per-process cache of the portal, in one place: what each holds, how many entries
and for how long.

They are cachetools caches. Those are not thread-safe, so each has a lock, held around
every read and write (`with caches.tokens_lock: ...`, or cachetools.cached(..., lock=...)).
`caches_clear()` empties them all; tests call it, and so does a change of a setting the
caches depend on (Django's setting_changed, which only tests send).

What a cache costs: a change made elsewhere reaches a process only when its entry expires
or is dropped. The services that make such a change drop the entry in their own process at
once (a revoked token, a deleted plan, a changed trust rule); the other web processes see
it within the entry's lifetime. What none of them does: serve an entry past its lifetime,
which is checked on every read.

- tokens, deliveries, trust: the API's token path, ECRPORTAL_API_CACHE_SECONDS (read when
  an entry is stored; 0 stores nothing), at most API_ENTRIES each, least recently used
  dropped first.
- aws_sessions: boto3 sessions and their clients, by principal; the ECRPORTAL_AWS_SESSIONS
  most recently used, and at most twice as many clients.
- jwks_clients, jwks_failures: a trusted CI issuer's JWKS client (PyJWKClient, which keeps
  the keys themselves), JWKS_SECONDS; a failed fetch, JWKS_FAILURE_SECONDS.
- sso_discovery: the sign-in provider's discovery document, SSO_DISCOVERY_SECONDS.
- portal_keys, portal_private_keys: the portal's own published signing keys,
  PORTAL_KEYS_SECONDS (another process's rotation reaches this one within it); their
  private keys, decrypted once per process, by key ID.

Not caches, so not here: values a process builds once and that cannot go stale
(`crypto`'s Fernet keys from the settings, `aws`'s botocore data loader and region lists,
`client_address`'s parsed proxy setting), the secrets `log_masking` must keep masking, and
`/readyz`'s sharing of one check's answer among the probes that arrived while it ran
(`services/health.py`: any lifetime could answer a probe from before it came).
"""

import threading
import time
from typing import Any

from cachetools import LRUCache, TLRUCache, TTLCache
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

API_ENTRIES = 10_000
JWKS_SECONDS = 3600
JWKS_FAILURE_SECONDS = 30
ISSUERS = 256  # trusted CI issuers a process keeps the keys of
SSO_DISCOVERY_SECONDS = 3600
PORTAL_KEYS_SECONDS = 60
PORTAL_PRIVATE_KEYS = 64


def _clock() -> float:
    """time.monotonic, looked up on each call: a test that moves the clock moves every
    cache's with it."""
    return time.monotonic()


def _api_expiry(_key: Any, _value: Any, at: float) -> float:
    # Read when the entry is stored: an entry that would expire at once is not stored.
    return at + settings.API_CACHE_SECONDS


def _api_cache() -> TLRUCache:
    return TLRUCache(maxsize=API_ENTRIES, ttu=_api_expiry, timer=_clock)


# --- the API's token path ---------------------------------------------------------------------

tokens = _api_cache()  # a token's hash → its ApiToken (the columns access decisions need)
tokens_lock = threading.Lock()
# a task ID → what it serves; ("scope", plan key, job key) → a plan's or job's delivery;
# ("binding", token ID) → the plan and job keys a token is bound to
deliveries = _api_cache()
deliveries_lock = threading.Lock()
trust = _api_cache()  # an issuer URL → (its TrustedIssuer, its enabled rules), for ID tokens
trust_lock = threading.Lock()


def tokens_forget(digests) -> None:
    """Drop these token hashes (revoked, or their plan or job deleted): at once in this
    process, in the others within ECRPORTAL_API_CACHE_SECONDS."""
    with tokens_lock:
        for digest in digests:
            tokens.pop(digest, None)


def trust_clear() -> None:
    """Forget every issuer's trust: an issuer or a trust rule changed."""
    with trust_lock:
        trust.clear()


# --- AWS ---------------------------------------------------------------------------------------


def _aws_sessions() -> LRUCache:
    """A session weighs one, or half its clients when it has more than two: at most
    ECRPORTAL_AWS_SESSIONS sessions, and at most twice as many clients (a session costs about
    0.3 MiB and each client as much again). One session alone always stays."""
    limit = settings.AWS_SESSIONS

    def weight(cached) -> float:
        return min(limit, max(1, len(cached.clients) / 2))

    return LRUCache(maxsize=limit, getsizeof=weight)


# (principal, caller, interactive) → tasks_app.lib.aws's session with its clients. Made again
# when ECRPORTAL_AWS_SESSIONS changes: its size is that setting.
aws_sessions = _aws_sessions()
# Re-entrant: tasks_app.lib.aws also holds it while it makes a session or client, which
# share botocore's data loader.
aws_sessions_lock = threading.RLock()


# --- OpenID Connect ----------------------------------------------------------------------------

jwks_clients: TTLCache = TTLCache(maxsize=ISSUERS, ttl=JWKS_SECONDS, timer=_clock)
jwks_failures: TTLCache = TTLCache(maxsize=ISSUERS, ttl=JWKS_FAILURE_SECONDS, timer=_clock)
# A condition: cachetools.cached lets one request per issuer make its client (the others
# wait for it, then find the client or the failure it left).
jwks_lock = threading.Condition()

sso_discovery: TTLCache = TTLCache(maxsize=16, ttl=SSO_DISCOVERY_SECONDS, timer=_clock)
sso_discovery_lock = threading.Lock()

portal_keys: TTLCache = TTLCache(maxsize=1, ttl=PORTAL_KEYS_SECONDS, timer=_clock)
portal_private_keys: LRUCache = LRUCache(maxsize=PORTAL_PRIVATE_KEYS)
portal_keys_lock = threading.Lock()


_ALL = (
    (tokens, tokens_lock),
    (deliveries, deliveries_lock),
    (trust, trust_lock),
    (jwks_clients, jwks_lock),
    (jwks_failures, jwks_lock),
    (sso_discovery, sso_discovery_lock),
    (portal_keys, portal_keys_lock),
    (portal_private_keys, portal_keys_lock),
)

# The settings that shape the caches or what they hold.
SETTINGS = frozenset(
    {
        "API_CACHE_SECONDS",
        "AWS_SESSIONS",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URLS",
        "OIDC_ISSUER",
        "OIDC_CA_BUNDLE",
        "OIDC_TIMEOUT",
    }
)


def caches_clear() -> None:
    """Empty every cache of this process."""
    global aws_sessions
    for cache, lock in _ALL:
        with lock:
            cache.clear()
    with aws_sessions_lock:
        aws_sessions = _aws_sessions()


@receiver(setting_changed)
def _setting_changed(*, setting, **kwargs):
    if setting in SETTINGS:
        caches_clear()
