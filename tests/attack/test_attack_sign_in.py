"""The password sign-in surface, attacked (issue 22).

The attacker: anyone who can reach the portal on the network, signed in or not, and the
pages they lure a signed-in person to. What they control: every field of the sign-in form
(username, password, next), the query string of /login/, headers such as X-Forwarded-For,
the session cookie they send or plant, and when they send what. What guards it: Django's
CSRF middleware and session rotation on sign-in, _safe_next (url_has_allowed_host_and_scheme)
in tasks_app/views/accounts.py, the per-account and per-address throttle of
tasks_app/services/logins.py fed by tasks_app/identity/client_address.py's client_address, the
PasswordChangeRequiredMiddleware, and the RequestGuardMiddleware for control characters.
"""

import html
import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote_from_bytes, urljoin, urlsplit

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.urls import reverse

from tasks_app.identity.actor import Actor
from tasks_app.models import AuditEvent, CallRate, Profile
from tasks_app.services.logins import login_retry_after
from tasks_app.services.people import user_deactivate
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/login/"
SITE = "http://testserver/login/"


def _sign_in(client, username, password, address="192.0.2.10", data=(), **meta):
    form = {"username": username, "password": password, **dict(data)}
    return client.post(LOGIN, form, REMOTE_ADDR=address, **meta)


def _as_a_browser_reads_it(location: str) -> tuple[str, str]:
    """(scheme, host) a browser goes to for this Location, read from the sign-in page: the
    WHATWG URL parser drops tabs and newlines, strips leading C0 controls and spaces, and
    takes a backslash for a slash in http(s) URLs."""
    cleaned = re.sub(r"[\t\n\r]", "", location).lstrip("\x00\x01\x02\x03\x04\x05 \x1f")
    cleaned = cleaned.replace("\\", "/")
    target = urlsplit(urljoin(SITE, cleaned))
    return target.scheme, target.hostname or ""


HOSTILE_NEXT = [
    "//evil.example/steal",
    "/\\evil.example/steal",
    "\\\\evil.example/steal",
    "///evil.example/steal",
    "https:evil.example/steal",
    "https:/evil.example/steal",
    "http:\\\\evil.example",
    "\t//evil.example/steal",
    "/\t/evil.example/steal",
    " //evil.example/steal",
    "https://testserver@evil.example/",
    "http://evil.example\\@testserver/",
    "https://evil.example#@testserver/",
    "javascript:alert(document.cookie)",
    "java\tscript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%2F%2Fevil.example",
    "/%5Cevil.example",
]


@pytest.mark.parametrize("target", HOSTILE_NEXT)
def test_next_in_any_spelling_never_sends_the_browser_off_the_site(client, target):
    make_user("carol")
    # Through the form.
    response = _sign_in(client, "carol", PASSWORD, data={"next": target})
    assert response.status_code == 302
    assert _as_a_browser_reads_it(response["Location"]) == ("http", "testserver"), response[
        "Location"
    ]
    # And a link sent to someone who is signed in already: no form at all.
    response = client.get(LOGIN, {"next": target})
    assert response.status_code == 302
    assert _as_a_browser_reads_it(response["Location"]) == ("http", "testserver"), response[
        "Location"
    ]
    # The page that keeps it for the form never writes it into a hidden field either.
    client.logout()
    page = client.get(LOGIN, {"next": target}).content.decode()
    kept = re.search(r'name="next" value="([^"]*)"', page)
    assert kept is not None
    assert _as_a_browser_reads_it(html.unescape(kept.group(1))) == ("http", "testserver")


def test_a_sign_in_or_sign_out_posted_from_another_site_is_refused():
    """Login CSRF: the attacker's page posts *their* credentials, to sign the victim in as
    the attacker (and see what the victim then types). Without the form's token: 403."""
    make_user("mallory")
    victim = Client(enforce_csrf_checks=True)
    response = _sign_in(victim, "mallory", PASSWORD)
    assert response.status_code == 403
    assert "_auth_user_id" not in victim.session

    # A token the attacker fetched with their own cookie does not pass with the victim's.
    attacker = Client(enforce_csrf_checks=True)
    page = attacker.get(LOGIN).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    victim.get(LOGIN)  # the victim has a CSRF cookie of their own
    response = _sign_in(victim, "mallory", PASSWORD, data={"csrfmiddlewaretoken": token})
    assert response.status_code == 403
    assert "_auth_user_id" not in victim.session
    assert not AuditEvent.objects.filter(action="login.succeeded").exists()

    # Logout CSRF: a cross-site POST does not end a session either.
    victim.force_login(make_user("carol"))
    assert victim.post("/logout/").status_code == 403
    assert victim.get("/").status_code == 200


def test_a_session_cookie_planted_or_kept_from_before_is_worthless(client):
    """Session fixation with a key the attacker chose, and replay of a key after sign-out."""
    make_user("carol")
    planted = "attackerchosenkey0123456789abcdef"
    client.cookies[settings.SESSION_COOKIE_NAME] = planted
    assert _sign_in(client, "carol", PASSWORD).status_code == 302
    signed_in = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert signed_in != planted
    assert client.get("/").status_code == 200

    client.post("/logout/")
    replay = Client()
    replay.cookies[settings.SESSION_COOKIE_NAME] = signed_in
    response = replay.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_deactivated_persons_open_session_ends_at_the_next_request_and_the_password_stops(
    client,
):
    root = make_user("root", is_superuser=True, is_staff=True)
    carol = make_user("carol")
    assert _sign_in(client, "carol", PASSWORD).status_code == 302
    assert client.get("/teams/").status_code == 200

    user_deactivate(user=carol, actor=Actor(user=root, address="192.0.2.1"))

    response = client.get("/teams/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert client.get("/api/v1/connectors").status_code in (401, 403)
    # Signing in again: the answer of a wrong password, saying nothing about the account.
    again = _sign_in(client, "carol", PASSWORD, address="192.0.2.11").content.decode()
    wrong = _sign_in(Client(), "carol", "not-the-password", address="192.0.2.12")
    assert "Please enter a correct username and password" in again
    assert again.count("errorlist") == wrong.content.decode().count("errorlist")
    assert "inactive" not in again.lower()
    assert client.get("/").status_code == 302


def test_an_unknown_account_and_a_wrong_password_answer_alike():
    make_user("carol")
    unknown = _sign_in(Client(), "nobody-here", "guess-1", address="192.0.2.20")
    wrong = _sign_in(Client(), "carol", "guess-1", address="192.0.2.21")

    def page(response):
        text = response.content.decode()
        text = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", text)
        return text.replace("nobody-here", "NAME").replace("carol", "NAME")

    assert unknown.status_code == wrong.status_code == 200
    assert page(unknown) == page(wrong)


@pytest.mark.parametrize(
    "variants",
    [
        ["CAROL", "Carol", "cArOl", "carol", "CaRoL"],
        [" carol", "carol ", "\tcarol", "CAROL\n", " Carol "],
        # Full-width letters: NFKC (Django's UsernameField) turns them into "carol".
        [
            "\uff43\uff41\uff52\uff4f\uff4c",
            "\uff23\uff21\uff32\uff2f\uff2c",
            "carol",
            "Carol",
            "CAROL",
        ],
    ],
    ids=["letter-case", "white-space", "full-width"],
)
def test_the_account_throttle_counts_every_spelling_of_the_name(client, variants):
    make_user("carol")
    spellings = variants[: settings.LOGIN_FAILURES_PER_ACCOUNT]
    for i, name in enumerate(spellings):
        # From a new address every time: only the account limit can stop this.
        _sign_in(client, name, f"guess-{i}", address=f"198.51.100.{i + 1}")

    response = _sign_in(client, "carol", PASSWORD, address="203.0.113.77")
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.failed", actor_name="carol").count() == len(
        spellings
    )


@pytest.mark.parametrize("proxies", [0, 1])
def test_a_forged_x_forwarded_for_does_not_reset_the_address_throttle(client, settings, proxies):
    """The attacker writes a new X-Forwarded-For on every guess. With no trusted proxy the
    header is ignored; behind one, the proxy's own entry (the last) is what counts."""
    settings.TRUSTED_PROXY_COUNT = proxies
    make_user("carol")
    peer = "203.0.113.9"
    for i in range(settings.LOGIN_FAILURES_PER_ADDRESS):
        forged = f"10.0.{i}.1, 192.0.2.{i + 1}"
        meta = {"HTTP_X_FORWARDED_FOR": forged + (f", {peer}" if proxies else "")}
        _sign_in(client, f"guess{i}", "wrong", address="127.0.0.1" if proxies else peer, **meta)

    meta = {"HTTP_X_FORWARDED_FOR": "198.51.100.200" + (f", {peer}" if proxies else "")}
    response = _sign_in(
        client, "carol", PASSWORD, address="127.0.0.1" if proxies else peer, **meta
    )
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert set(AuditEvent.objects.values_list("address", flat=True)) == {peer}


@pytest.mark.django_db(transaction=True)  # the guesses run in threads of their own
def test_guesses_sent_all_at_once_are_all_counted():
    """Guesses that pass the throttle's check together, before any has failed, each take
    their slot: the account waits for every one of them (PostgreSQL locks the row)."""
    make_user("carol")
    burst = settings.LOGIN_FAILURES_PER_ACCOUNT
    guesses = burst + 3
    start = threading.Barrier(guesses)

    def guess(i):
        try:
            start.wait(timeout=30)
            return _sign_in(Client(), "carol", f"guess-{i}", address=f"198.51.100.{i + 1}")
        finally:
            connection.close()

    with ThreadPoolExecutor(guesses) as pool:
        answers = list(pool.map(guess, range(guesses)))
    assert all("_auth_user_id" not in answer.client.session for answer in answers)
    failed = AuditEvent.objects.filter(action="login.failed").count()
    throttled = AuditEvent.objects.filter(action="login.throttled").count()
    assert failed + throttled == guesses
    assert failed >= burst
    interval = settings.LOGIN_THROTTLE_SECONDS / burst
    wait = login_retry_after(actor=Actor(address="203.0.113.77"), username="carol")
    assert wait == pytest.approx((failed - burst + 1) * interval, abs=15)
    response = _sign_in(Client(), "carol", PASSWORD, address="203.0.113.77")
    assert "Too many failed sign-in attempts" in response.content.decode()


def test_a_one_time_password_session_reaches_no_page_before_the_password_is_changed(client):
    user = make_user("dora", password="Temporary-One-Time-1", is_superuser=True, is_staff=True)
    Profile.objects.create(user=user, must_change_password=True)
    assert _sign_in(client, "dora", "Temporary-One-Time-1")["Location"] == reverse(
        "password_change"
    )
    change = reverse("password_change")
    for path in ("/", "/teams/", "/connectors/", "/users/", "/audit/", "/admin/", "/plans/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == change, path
    # Already signed in: /login/ and the admin's login send it on, to the form again.
    response = client.get(LOGIN, {"next": "/users/"}, follow=True)
    assert response.redirect_chain[-1][0] == change
    response = client.get("/admin/login/", {"next": "/admin/auth/user/"}, follow=True)
    assert response.redirect_chain[-1][0] == change
    # A POST to a page that changes something is not let through either.
    response = client.post(reverse("team_create"), {"name": "Sneaky", "slug": "sneaky"})
    assert response["Location"] == change
    assert not AuditEvent.objects.filter(action="team.created").exists()


def test_a_one_time_password_session_gets_nothing_from_the_api_before_the_change(client):
    user = make_user("dora", password="Temporary-One-Time-1", is_superuser=True, is_staff=True)
    Profile.objects.create(user=user, must_change_password=True)
    _sign_in(client, "dora", "Temporary-One-Time-1")
    for path in ("/api/v1/connectors", "/api/v1/plans", "/api/v1/variables"):
        response = client.get(path)
        assert response.status_code in (302, 401, 403), path


@pytest.mark.parametrize(
    ("username", "password"),
    [
        ("a" * 10_000, "whatever"),
        ("carol\x00", PASSWORD),
        ("\x00", "\x00"),
        ("carol", PASSWORD + "\x00"),
        ("carol\x01\x1f", "x"),
        (b"\xed\xa0\x80\xff", b"\xc3("),
        ("💥" * 200, "💥" * 5_000),
        ("", ""),
    ],
    ids=["10k", "nul-name", "nul-both", "nul-password", "c0", "not-utf-8", "emoji", "empty"],
)
def test_hostile_names_and_passwords_get_a_form_answer_never_a_500(client, username, password):
    make_user("carol")
    if isinstance(username, bytes):  # not UTF-8: sent as raw bytes, as a script would
        body = b"username=" + quote_from_bytes(username).encode()
        body += b"&password=" + quote_from_bytes(password).encode()
        response = client.post(
            LOGIN, body, content_type="application/x-www-form-urlencoded", REMOTE_ADDR="192.0.2.4"
        )
    else:
        response = _sign_in(client, username, password)
    assert response.status_code in (200, 400)
    assert "_auth_user_id" not in client.session
    for event in AuditEvent.objects.all():
        assert "\x00" not in event.actor_name
        assert len(event.actor_name) <= 150


def test_a_nul_in_the_sign_in_address_is_refused_before_the_view(client):
    make_user("carol")
    assert client.get(LOGIN + "?next=/teams/%00").status_code == 400
    response = client.post(
        LOGIN + "?next=%00", {"username": "carol", "password": PASSWORD}, REMOTE_ADDR="192.0.2.3"
    )
    assert response.status_code == 400
    assert not AuditEvent.objects.exists()


def test_the_password_is_never_logged_audited_or_echoed_whatever_the_outcome(client, caplog):
    sentinel = "Sentinel-Pa55word-7c41ab"
    make_user("carol", password=sentinel)
    with caplog.at_level(logging.DEBUG):
        failed = _sign_in(Client(), "carol", sentinel + "-wrong")
        for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
            _sign_in(Client(), "carol", sentinel + "-wrong")
        throttled = _sign_in(Client(), "carol", sentinel)
        recorded = [f"{e.actor_name} {e.summary} {e.changes}" for e in AuditEvent.objects.all()]
        AuditEvent.objects.filter(action__in=["login.failed", "login.throttled"]).delete()
        CallRate.objects.filter(name__startswith="login:").delete()  # the throttle forgotten
        succeeded = _sign_in(client, "carol", sentinel)
    assert "Too many" in throttled.content.decode()
    assert succeeded.status_code == 302
    for response in (failed, throttled):
        assert sentinel not in response.content.decode()
        assert "carol" in response.content.decode()  # the name is kept, the password is not
    assert sentinel not in caplog.text
    assert "login.succeeded" in caplog.text
    recorded += [f"{e.actor_name} {e.summary} {e.changes}" for e in AuditEvent.objects.all()]
    assert len(recorded) == settings.LOGIN_FAILURES_PER_ACCOUNT + 3
    for text in recorded:
        assert sentinel not in text
    stored = get_user_model().objects.get(username="carol").password
    assert sentinel not in stored


@pytest.mark.django_db
def test_a_password_typed_as_the_username_is_not_written_down(client, caplog):
    """A name no account has is often a password typed in the wrong field: the audit trail
    and the log name a keyed digest of it (the same for the same name), never the text."""
    make_user("carol")
    typed = "Hunter2-MyRealPassword!"
    with caplog.at_level(logging.INFO):
        for address in ("192.0.2.10", "192.0.2.11"):
            _sign_in(client, typed, "whatever", address=address)
        _sign_in(client, "Carol", "wrong", address="192.0.2.12")
    names = list(
        AuditEvent.objects.filter(action="login.failed")
        .order_by("created")
        .values_list("actor_name", flat=True)
    )
    assert names[0] == names[1]
    assert names[0].startswith("unknown account #")
    assert names[2] == "carol"  # an account's own name, as before
    everything = " ".join(names) + caplog.text + str(list(AuditEvent.objects.values()))
    assert "hunter2" not in everything.lower()
