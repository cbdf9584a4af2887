import logging
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.models import AuditEvent, CallRate, Profile
from tasks_app.services import pacing
from tasks_app.services.logins import login_failed, login_retry_after
from tests.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db

LOGIN = "/login/"


def _sign_in(client, username, password, address="192.0.2.10", data=(), **meta):
    form = {"username": username, "password": password, **dict(data)}
    return client.post(LOGIN, form, REMOTE_ADDR=address, **meta)


def test_it_signs_in_and_changes_the_session_key(client):
    make_user("carol")
    client.get(LOGIN)  # any anonymous session a visitor (or attacker) got before
    client.session.save()
    before = client.session.session_key

    response = _sign_in(client, "carol", PASSWORD)

    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard")
    assert client.session.session_key != before
    assert client.get("/").status_code == 200
    assert AuditEvent.objects.filter(action="login.succeeded", actor_name="carol").exists()


def test_it_refuses_a_wrong_password_with_a_generic_message(client):
    make_user("carol")
    response = _sign_in(client, "carol", "wrong")
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(action="login.failed")
    assert event.actor_name == "carol"
    assert event.address == "192.0.2.10"


def test_it_throttles_an_account_after_repeated_failures(client):
    make_user("carol")
    for i in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        # From different addresses: the account limit applies on its own.
        _sign_in(client, "carol", "wrong", address=f"192.0.2.{i + 1}")

    # Even the right password is refused now, without being checked.
    response = _sign_in(client, "Carol", PASSWORD, address="198.51.100.7")

    body = response.content.decode()
    # The next failure the account may make: one each 900 s / 5.
    assert "Too many failed sign-in attempts. Try again in 3 minutes." in body
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login.throttled", actor_name="carol").count() == 1


def test_it_throttles_an_address_trying_many_accounts(client):
    make_user("carol")
    for i in range(settings.LOGIN_FAILURES_PER_ADDRESS):
        _sign_in(client, f"guess{i}", "wrong", address="203.0.113.9")

    response = _sign_in(client, "carol", PASSWORD, address="203.0.113.9")
    assert "Too many failed sign-in attempts" in response.content.decode()

    # Another address may still sign in to that account.
    response = _sign_in(client, "carol", PASSWORD, address="203.0.113.10")
    assert response.status_code == 302


def test_it_lets_the_account_try_again_when_its_next_try_comes(client, monkeypatch):
    make_user("carol")
    for _ in range(settings.LOGIN_FAILURES_PER_ACCOUNT):
        _sign_in(client, "carol", "wrong")
    assert "Too many" in _sign_in(client, "carol", PASSWORD).content.decode()

    interval = timedelta(seconds=settings.LOGIN_THROTTLE_SECONDS) / (
        settings.LOGIN_FAILURES_PER_ACCOUNT
    )
    almost, then = now() + interval - timedelta(seconds=2), now() + interval
    monkeypatch.setattr(pacing, "now", lambda: almost)
    assert "Too many" in _sign_in(client, "carol", PASSWORD).content.decode()
    monkeypatch.setattr(pacing, "now", lambda: then)
    assert _sign_in(client, "carol", PASSWORD).status_code == 302


def test_after_the_burst_one_more_failure_each_interval_and_the_burst_after_a_quiet_window(
    db, monkeypatch
):
    burst = settings.LOGIN_FAILURES_PER_ACCOUNT
    window = timedelta(seconds=settings.LOGIN_THROTTLE_SECONDS)
    interval = window / burst
    actor, at = Actor(address=None), now()  # no address: the account's limit alone
    clock = [at]
    monkeypatch.setattr(pacing, "now", lambda: clock[0])

    def retry_after():
        return login_retry_after(actor=actor, username="carol")

    for _ in range(burst):
        assert retry_after() is None
        login_failed(actor=actor, username="Carol ")
    assert retry_after() == interval.total_seconds()
    login_failed(actor=actor, username="carol", throttled=True)  # a refusal takes no slot
    assert retry_after() == interval.total_seconds()

    clock[0] = at + interval
    assert retry_after() is None
    login_failed(actor=actor, username="carol")
    assert retry_after() == interval.total_seconds()  # one more, then refused again

    clock[0] = at + interval + window  # a whole quiet window: the whole burst again
    for _ in range(burst):
        assert retry_after() is None
        login_failed(actor=actor, username="carol")
    assert retry_after() is not None
    # The audit events stay the trail: every attempt, refused ones too.
    assert AuditEvent.objects.filter(action="login.failed").count() == 2 * burst + 1
    assert AuditEvent.objects.filter(action="login.throttled").count() == 1


def test_the_throttles_rows_name_no_account_or_address_and_fit_any_of_them(db):
    name, address = "n" * 150, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
    login_failed(actor=Actor(address=address), username=name)
    rows = list(CallRate.objects.values_list("name", flat=True))
    assert len(rows) == 2
    assert {row.rsplit(":", 1)[0] for row in rows} == {"login:account", "login:address"}
    for row in rows:
        assert name[:20] not in row
        assert address not in row


def test_it_trusts_forwarded_addresses_only_from_configured_proxies(client, settings):
    make_user("carol")
    forged = {"HTTP_X_FORWARDED_FOR": "10.9.9.9, 198.51.100.1"}
    _sign_in(client, "carol", "wrong", address="127.0.0.1", **forged)
    assert AuditEvent.objects.get().address == "127.0.0.1"

    settings.TRUSTED_PROXY_COUNT = 1
    _sign_in(client, "carol", "wrong", address="127.0.0.1", **forged)
    assert AuditEvent.objects.order_by("-created").first().address == "198.51.100.1"


def test_it_never_logs_or_records_the_password(client, caplog):
    make_user("carol")
    sentinel = "Sentinel-Password-9f2c1e"
    with caplog.at_level(logging.DEBUG):
        _sign_in(client, "carol", sentinel)
    assert sentinel not in caplog.text
    assert "login.failed" in caplog.text
    for event in AuditEvent.objects.all():
        assert sentinel not in f"{event.summary} {event.changes}"


def test_it_only_follows_next_within_the_site(client):
    make_user("carol")
    response = _sign_in(client, "carol", PASSWORD, data={"next": "https://evil.example/steal"})
    assert response["Location"] == reverse("dashboard")

    client.logout()
    response = _sign_in(client, "carol", PASSWORD, data={"next": "/teams/"})
    assert response["Location"] == "/teams/"


def test_logout_needs_a_post(client):
    user = make_user("carol")
    client.force_login(user)
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response["Location"] == reverse("login")
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="logout", actor=user).exists()


def test_a_one_time_password_must_be_replaced_first(client):
    user = make_user("dora", password="Temporary-One-Time-1")
    Profile.objects.create(user=user, must_change_password=True)

    response = _sign_in(client, "dora", "Temporary-One-Time-1")
    assert response["Location"] == reverse("password_change")
    # Every other page leads back to the form until the password is changed.
    assert client.get("/teams/")["Location"] == reverse("password_change")
    assert "Choose your password" in client.get(reverse("password_change")).content.decode()

    response = client.post(
        reverse("password_change"),
        {
            "old_password": "Temporary-One-Time-1",
            "new_password1": "a-Much-better-passphrase-42",
            "new_password2": "a-Much-better-passphrase-42",
        },
    )
    assert response["Location"] == reverse("dashboard")
    assert client.get("/teams/").status_code == 200
    assert not Profile.objects.get(user=user).must_change_password


def test_the_admin_signs_in_through_the_throttled_form(client):
    response = client.get("/admin/login/?next=/admin/auth/user/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/admin/auth/user/"
