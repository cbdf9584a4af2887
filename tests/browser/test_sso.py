"""Single sign-on against a real OpenID Connect provider (tests/oidc_provider: django-oauth-
toolkit in a process of its own), in Chromium: first sign-on creates the account, group
claims give team roles, sign-out; a wrong state, a wrong audience, an expired ID token and
an e-mail outside the allowed domains are refused (issue 15)."""

from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tasks_app.lib import caches
from tasks_app.models import AuditEvent, ExternalIdentity, Membership, Role
from tests.browser import new_context, screenshot
from tests.factories import make_team, make_user
from tests.sso_provider import CLIENT_ID, CLIENT_SECRET, PROVIDER_PASSWORD, start_provider

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def provider(live_server, tmp_path_factory):
    started = start_provider(
        tmp_path_factory.mktemp("provider"), redirect_uri=f"{live_server.url}/oidc/callback/"
    )
    yield started
    started.stop()


@pytest.fixture
def sso_on(provider, settings):
    settings.OIDC_ISSUER = provider.issuer
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_NAME = "Corp SSO"
    settings.OIDC_ALLOWED_DOMAINS = ["corp.example"]
    settings.OIDC_TEAM_MAP = {
        "platform-devs": [("platform", "editor")],
        "platform-admins": [("platform", "admin")],
    }
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tasks_app.views.sso.PortalOIDCBackend",
    ]
    caches.caches_clear()
    yield provider
    caches.caches_clear()


def _sign_on(page, base: str, username: str) -> None:
    page.goto(base + "/login/")
    page.get_by_role("link", name="Sign in with Corp SSO").click()
    expect(page.get_by_role("heading", name="Test identity provider")).to_be_visible()
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PROVIDER_PASSWORD)
    page.get_by_role("button", name="Sign in at the provider").click()


@pytest.fixture
def person(browser):
    """A browser of one's own per person: the provider remembers who signed in."""
    contexts = []

    def open_page():
        context = new_context(browser, viewport={"width": 1280, "height": 800})
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def test_first_sign_on_creates_the_account_with_team_roles_from_groups(
    live_server, sso_on, person
):
    team = make_team("Platform")
    page = person()
    _sign_on(page, live_server.url, "sso-dev")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.locator(".account")).to_contain_text("sso-dev")
    screenshot(page, "sso-signed-in")

    user = get_user_model().objects.get(username="sso-dev")
    assert user.email == "dev@corp.example"
    assert not user.has_usable_password()
    assert ExternalIdentity.objects.get(user=user).issuer == sso_on.issuer
    assert Membership.objects.get(team=team, user=user).role == Role.EDITOR
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"sso.account_created", "sso.membership_synced", "login.succeeded"} <= actions

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You have signed out.")).to_be_visible()
    assert page.url.endswith("/login/")

    lead = person()
    _sign_on(lead, live_server.url, "sso-lead")
    expect(lead.get_by_role("heading", name="Dashboard")).to_be_visible()
    # In two mapped groups: the higher role wins.
    assert Membership.objects.get(team=team, user__username="sso-lead").role == Role.ADMIN


def test_a_second_sign_on_finds_the_same_account_by_subject(live_server, sso_on, person):
    make_team("Platform")
    for _ in range(2):
        page = person()
        _sign_on(page, live_server.url, "sso-dev")
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert get_user_model().objects.filter(username__startswith="sso-dev").count() == 1


def test_an_existing_account_is_linked_by_its_email(live_server, sso_on, person):
    make_user("dana", email="dev@corp.example")
    page = person()
    _sign_on(page, live_server.url, "sso-dev")
    expect(page.locator(".account")).to_contain_text("dana")
    assert ExternalIdentity.objects.get().user.username == "dana"


def test_a_wrong_state_is_refused(live_server, sso_on, person):
    page = person()

    def tamper(route):
        # The portal's redirect to the provider carries its state; the provider echoes
        # whatever it got back to the callback. (Playwright routes the first request of
        # a redirect chain only, so this is where to change it.)
        answer = route.fetch(max_redirects=0)
        location = urlsplit(answer.headers["location"])
        query = dict(parse_qsl(location.query))
        query["state"] = "forged-state"
        forged = location._replace(query=urlencode(query)).geturl()
        route.fulfill(status=302, headers={**answer.headers, "location": forged})

    page.route(lambda url: "/oidc/authenticate/" in url, tamper)
    _sign_on(page, live_server.url, "sso-dev")
    expect(
        page.get_by_text("Single sign-on failed: the answer does not belong to a")
    ).to_be_visible()
    assert not get_user_model().objects.filter(username="sso-dev").exists()
    assert AuditEvent.objects.filter(action="login.failed").exists()


@pytest.mark.parametrize(
    ("username", "reason"),
    [
        ("expired", "The ID token is not valid: Signature has expired"),
        ("wrong-audience", "The ID token is not valid: Audience doesn't match"),
        ("outsider", "Single sign-on is open to verified e-mail addresses in corp.example"),
    ],
)
def test_bad_id_tokens_and_other_domains_are_refused(
    live_server, sso_on, person, username, reason
):
    page = person()
    _sign_on(page, live_server.url, username)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator(".messages")).to_contain_text(reason)
    assert not get_user_model().objects.filter(username=username).exists()
    event = AuditEvent.objects.get(action="login.failed")
    assert CLIENT_SECRET not in str(event.changes) + event.summary


def test_a_deactivated_person_is_signed_out_and_refused(live_server, sso_on, person):
    page = person()
    _sign_on(page, live_server.url, "sso-dev")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    get_user_model().objects.filter(username="sso-dev").update(is_active=False)
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Sign in with Corp SSO").click()
    expect(page.locator(".messages")).to_contain_text("Your portal account is deactivated")
