"""The per-process caches (tasks_app/lib/caches.py): cachetools caches, their lifetimes kept,
emptied by caches_clear() and by a change of a setting they depend on."""

import time

import cachetools
import pytest

from tasks_app.lib import caches


def _caches() -> dict[str, cachetools.Cache]:
    return {
        name: value for name, value in vars(caches).items() if isinstance(value, cachetools.Cache)
    }


def _at(monkeypatch, seconds: float) -> None:
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + seconds)


def test_an_api_entry_lives_api_cache_seconds_and_not_a_moment_longer(settings, monkeypatch):
    settings.API_CACHE_SECONDS = 5
    start = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: start)
    for cache in (caches.tokens, caches.deliveries, caches.trust):
        cache["key"] = "value"
    monkeypatch.setattr(time, "monotonic", lambda: start + 4.999)
    assert [cache.get("key") for cache in (caches.tokens, caches.deliveries, caches.trust)] == [
        "value"
    ] * 3
    monkeypatch.setattr(time, "monotonic", lambda: start + 5)
    assert [cache.get("key") for cache in (caches.tokens, caches.deliveries, caches.trust)] == [
        None
    ] * 3


def test_no_api_cache_seconds_stores_nothing(settings):
    settings.API_CACHE_SECONDS = 0
    caches.tokens["key"] = "value"
    assert "key" not in caches.tokens
    assert len(caches.tokens) == 0


def test_the_api_caches_keep_at_most_their_size(settings):
    settings.API_CACHE_SECONDS = 60
    for i in range(caches.API_ENTRIES + 10):
        caches.deliveries[i] = i
    assert len(caches.deliveries) == caches.API_ENTRIES
    assert 0 not in caches.deliveries  # the least recently used went first
    assert caches.API_ENTRIES + 9 in caches.deliveries


def test_a_failure_is_remembered_for_its_cool_down(monkeypatch):
    caches.jwks_failures["https://ci.example.com"] = "unreachable"
    _at(monkeypatch, caches.JWKS_FAILURE_SECONDS - 0.5)
    assert caches.jwks_failures.get("https://ci.example.com") == "unreachable"
    _at(monkeypatch, caches.JWKS_FAILURE_SECONDS)
    assert caches.jwks_failures.get("https://ci.example.com") is None


def test_caches_clear_empties_every_cache(settings):
    settings.API_CACHE_SECONDS = 60
    found = _caches()
    assert set(found) >= {
        "tokens",
        "deliveries",
        "trust",
        "aws_sessions",
        "jwks_clients",
        "jwks_failures",
        "sso_discovery",
        "portal_keys",
        "portal_private_keys",
    }
    for name, cache in found.items():
        cache[name] = (
            type("Session", (), {"clients": {}})() if cache is caches.aws_sessions else name
        )
        assert len(cache) == 1, name
    caches.caches_clear()
    assert {name: len(cache) for name, cache in _caches().items()} == dict.fromkeys(found, 0)


@pytest.mark.parametrize("setting", sorted(caches.SETTINGS))
def test_a_setting_the_caches_depend_on_empties_them(settings, setting):
    settings.API_CACHE_SECONDS = 60
    caches.trust["https://ci.example.com"] = (None, [])
    setattr(settings, setting, getattr(settings, setting))  # Django sends setting_changed
    assert len(caches.trust) == 0


def test_the_aws_session_cache_is_sized_by_its_setting(settings):
    settings.AWS_SESSIONS = 3
    assert caches.aws_sessions.maxsize == 3
    settings.AWS_SESSIONS = 7
    assert caches.aws_sessions.maxsize == 7
