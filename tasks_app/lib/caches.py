"""A small per-process cache whose entries live a few seconds (ECRPORTAL_API_CACHE_SECONDS).

The API's token path uses it so that a CI fetch does not query the database
every time. What that costs: a revoked token, or a task's new variables, take
effect within that many seconds in each web process. What it never does:
serve a value past its expiry, which is checked on every request.
"""

import threading
import time
from collections import OrderedDict

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

MAX_ENTRIES = 10_000
_MISSING = object()


class TtlCache:
    def __init__(self):
        self._lock = threading.Lock()
        self._entries: OrderedDict = OrderedDict()

    def get(self, key, default=None):
        with self._lock:
            entry = self._entries.get(key, _MISSING)
            if entry is _MISSING:
                return default
            stored_at, value = entry
            if time.monotonic() - stored_at >= settings.API_CACHE_SECONDS:
                del self._entries[key]
                return default
            return value

    def put(self, key, value) -> None:
        if settings.API_CACHE_SECONDS <= 0:
            return
        with self._lock:
            self._entries[key] = (time.monotonic(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > MAX_ENTRIES:
                self._entries.popitem(last=False)

    def discard(self, key) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


tokens = TtlCache()
deliveries = TtlCache()
trust = TtlCache()  # an issuer URL → (its TrustedIssuer, its rules), for ID tokens


@receiver(setting_changed)
def _reset(*, setting, **kwargs):
    if setting == "API_CACHE_SECONDS":
        tokens.clear()
        deliveries.clear()
        trust.clear()
