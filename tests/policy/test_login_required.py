"""Every URL of the portal needs a signed-in user, except the few public ones.

The URLs come from the resolver, not from a hand-kept list, so a new view is
covered the moment it is routed.
"""

import json
import re
import uuid
from urllib.parse import urlsplit

import pytest
from django.urls import Resolver404, URLPattern, URLResolver, get_resolver, resolve, reverse
from django.urls.resolvers import RegexPattern, RoutePattern

from tasks_app.admin import admin_login
from tasks_app.views import accounts, downloads, health, issuer, people, sso

# Views that anyone may call. The test below checks that no other view is exempt.
PUBLIC_VIEWS = {
    accounts.login_view,
    health.healthz,
    health.readyz,
    # Prometheus' scrape: its own bearer token (tests/attack/test_attack_metrics.py).
    health.metrics,
    admin_login,
    # An invitation link: whoever holds it creates an account (tests/services/test_invitations.py).
    people.invitation_accept_view,
    # Single sign-on: where sign-in starts and where the provider answers
    # (tests/browser/test_sso.py).
    sso.sign_on_start,
    sso.sign_on_callback,
    # The credential helper, fetched before a build host has a token (no secret in it).
    downloads.download,
    # The portal as an OIDC issuer: AWS fetches these without signing in (public keys).
    issuer.openid_configuration,
    issuer.jwks_document,
}

SAMPLES = {
    "uuid": str(uuid.uuid4()),
    "int": "1",
    "slug": "sample",
    "str": "sample",
    "path": "sample/path",
}
# Tried in order for the named groups of regex patterns (Django's admin has a few).
REGEX_CANDIDATES = ["tasks_app", "auth", "1", SAMPLES["uuid"], "WEB-BUILD", "sample"]


def _named_groups(regex: str):
    """Yield (start, end, inner) for every (?P<name>...) group, parentheses balanced."""
    for match in re.finditer(r"\(\?P<\w+>", regex):
        depth, i = 1, match.end()
        while depth:
            if regex[i] == "\\":
                i += 2
                continue
            depth += {"(": 1, ")": -1}.get(regex[i], 0)
            i += 1
        yield match.start(), i, regex[match.end() : i - 1]


def _fill_regex(regex: str) -> list[str]:
    """Candidate paths for a regex pattern: each named group gets a matching sample."""
    regex = regex.removeprefix("^").removesuffix("$").removesuffix(r"\Z")
    parts, last = [], 0
    for start, end, inner in _named_groups(regex):
        parts.append(regex[last:start])
        parts.append([c for c in REGEX_CANDIDATES if re.fullmatch(inner, c)])
        last = end
    parts.append(regex[last:])
    paths = [""]
    for part in parts:
        options = part if isinstance(part, list) else [part.replace("\\", "")]
        paths = [p + option for p in paths for option in options]
    return paths


def _fill(pattern) -> list[str]:
    if isinstance(pattern, RoutePattern):
        route = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: SAMPLES[m.group(1) or "str"], str(pattern))
        return [route]
    if isinstance(pattern, RegexPattern):
        return _fill_regex(pattern.regex.pattern)
    raise AssertionError(f"cannot build a sample URL for {pattern!r}; extend this test")


def _walk(patterns, prefixes=("",)):
    for entry in patterns:
        candidates = [p + fill for p in prefixes for fill in _fill(entry.pattern)]
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, candidates)
        elif isinstance(entry, URLPattern):
            yield entry, candidates


def all_urls():
    """(path, view) for every routed view, with samples for its parameters."""
    found = []
    for entry, candidates in _walk(get_resolver().url_patterns):
        for candidate in candidates:
            path = "/" + candidate
            match = _resolve_or_none(path)
            if match is not None and match.func == entry.callback:
                found.append((path, entry.callback))
                break
        else:
            raise AssertionError(f"no sample URL resolves to {entry!r}; extend this test")
    return found


def _resolve_or_none(path):
    try:
        return resolve(path)
    except Resolver404:
        return None


def test_the_url_list_covers_the_portal_and_the_admin():
    paths = {path for path, _ in all_urls()}
    assert reverse("team_list") in paths
    assert reverse("admin:index") in paths
    assert len(paths) > 30  # the admin alone routes dozens


def test_only_login_health_and_admin_login_redirect_are_public():
    """API views authenticate themselves (token or session): anonymous callers get 401."""
    exempt = {
        view
        for path, view in all_urls()
        if getattr(view, "login_required", True) is False and not path.startswith("/api/")
    }
    assert exempt == PUBLIC_VIEWS


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post"])
def test_every_url_sends_anonymous_users_to_login(client, method):
    login_path = reverse("login")
    checked = 0
    for path, view in all_urls():
        if view in PUBLIC_VIEWS and view is not admin_login:
            continue
        response = getattr(client, method)(path)
        if path.startswith("/api/"):
            assert response.status_code == 401, path
            assert json.loads(response.content)["error"] == "unauthenticated", path
            assert response["WWW-Authenticate"] == 'Bearer realm="ecrportal"', path
        else:
            assert _lands_on(client, response) == login_path, f"{method.upper()} {path}"
        checked += 1
    assert checked > 30


def _lands_on(client, response, hops=3) -> str:
    """Follow same-site redirects (the admin adds one of its own) to where they end."""
    for _ in range(hops):
        if response.status_code != 302:
            return f"<{response.status_code}>"
        location = urlsplit(response["Location"])
        assert not location.netloc, f"redirect leaves the site: {response['Location']}"
        if location.path == reverse("login"):
            return location.path
        response = client.get(response["Location"])
    return f"<more than {hops} redirects>"


@pytest.mark.django_db
def test_public_pages_answer_anonymous_users(client):
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("healthz")).status_code == 200
