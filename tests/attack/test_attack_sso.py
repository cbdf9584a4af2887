"""The single sign-on surface's attacker file (issue 15's holes 1, 9 and 10).

The attacker controls an identity provider the portal trusts, or an account at one: a hostile
provider on 127.0.0.1 that serves a discovery document, a JWKS of its own RSA key, a token
endpoint and a userinfo endpoint, and signs whatever claims it likes into its ID tokens
(email, email_verified in any type or spelling, sub, groups), and answers userinfo with
whatever it likes (another subject, none, another address). It also controls which of
those claims it leaves out. It does not control the portal's settings, its database or the
browser's session (state, nonce and PKCE are the portal's).

The victim is boss, a portal superuser whose address is boss@corp.example. Whatever the
provider signs, an address it does not vouch for with email_verified true (JSON true, or the
string "true" in any letter case) never signs anyone in as boss, never gives boss an
external identity, never passes ECRPORTAL_OIDC_ALLOWED_DOMAINS, and never becomes a second
account's address; userinfo that names another subject (or none) is ignored whole; a claim
never leaves a team without an admin.

The sign-ons below go through the real callback (/oidc/authenticate/, then /oidc/callback/,
mozilla-django-oidc and tasks_app/views/sso.py) against the hostile provider; the team rules and a
lost race are checked at sso_sign_in.
"""

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.models import AuditEvent, ExternalIdentity, Membership, Role
from tasks_app.services.sso import sso_sign_in
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

CLIENT_ID = "ecr-portal"
CLIENT_SECRET = "hostile-provider-client-secret-sentinel-77"
ACCESS_TOKEN = "hostile-access-token-sentinel-31"
BOSS_EMAIL = "boss@corp.example"
ACTOR = Actor(address="127.0.0.1", label="sso")
MISSING = object()  # the claim is left out


class HostileProvider:
    """An OpenID provider that signs whatever claims the test sets (id_claims) and answers
    userinfo with whatever it sets (userinfo; by default the ID token's person)."""

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.id_claims: dict = {}
        self.userinfo: dict | None = None
        self.nonce = ""
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                path = urlsplit(self.path).path
                if path == "/.well-known/openid-configuration":
                    self._json(provider.discovery())
                elif path == "/jwks":
                    self._json(provider.jwks())
                elif path == "/userinfo":
                    self._json(provider.userinfo_answer())
                else:
                    self._json({"error": "not_found"}, status=404)

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if urlsplit(self.path).path != "/token":
                    self._json({"error": "not_found"}, status=404)
                    return
                self._json(
                    {
                        "access_token": ACCESS_TOKEN,
                        "token_type": "Bearer",
                        "expires_in": 300,
                        "id_token": provider.id_token(),
                    }
                )

            def _json(self, body, status=200):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits for serve_forever()'s next poll: 0.05 s, not the default 0.5 s.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": self.issuer + "/authorize",
            "token_endpoint": self.issuer + "/token",
            "userinfo_endpoint": self.issuer + "/userinfo",
            "jwks_uri": self.issuer + "/jwks",
        }

    def jwks(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**jwk, "kid": "hostile-1", "use": "sig", "alg": "RS256"}]}

    def id_token(self) -> str:
        at = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "iat": at,
            "exp": at + 300,
            "nonce": self.nonce,
            **self.id_claims,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "hostile-1"})

    def userinfo_answer(self) -> dict:
        if self.userinfo is not None:
            return self.userinfo
        person = ("sub", "email", "email_verified", "preferred_username", "groups")
        return {k: v for k, v in self.id_claims.items() if k in person}

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def hostile():
    provider = HostileProvider()
    yield provider
    provider.stop()


@pytest.fixture
def provider(hostile, settings):
    hostile.id_claims, hostile.userinfo, hostile.nonce = {}, None, ""
    settings.OIDC_ISSUER = hostile.issuer
    settings.OIDC_ENABLED = True
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    settings.OIDC_NAME = "Corp SSO"
    settings.OIDC_ALLOWED_DOMAINS = []
    settings.OIDC_CREATE_USERS = True
    settings.OIDC_TEAM_CLAIM = "groups"
    settings.OIDC_TEAM_MAP = {}
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tasks_app.views.sso.PortalOIDCBackend",
    ]
    caches.caches_clear()
    yield hostile
    caches.caches_clear()


@pytest.fixture
def boss(db):
    return make_user("boss", email=BOSS_EMAIL, is_superuser=True, is_staff=True)


def _sign_on(client, provider: HostileProvider, id_claims: dict, userinfo: dict | None = None):
    """The portal's own sign-on, answered by the hostile provider: the browser's part is
    the test client's (it follows the portal's redirect to the provider, and the provider's
    answer back to the callback with the portal's state). The signed-in account, or None."""
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302, start
    query = parse_qs(urlsplit(start["Location"]).query)
    assert start["Location"].startswith(provider.issuer + "/authorize")
    provider.nonce = query["nonce"][0]
    provider.id_claims = {k: v for k, v in id_claims.items() if v is not MISSING}
    provider.userinfo = userinfo
    answer = client.get("/oidc/callback/", {"code": "any-code", "state": query["state"][0]})
    assert answer.status_code == 302, answer
    user_id = client.session.get("_auth_user_id")
    return get_user_model().objects.get(pk=user_id) if user_id else None


def _assert_boss_untouched(boss, signed_in) -> None:
    """Not signed in as boss, boss has no external identity, and no other account has boss's
    address (the attacker is refused, or has a new account of their own without it)."""
    assert signed_in is None or signed_in.pk != boss.pk
    assert ExternalIdentity.objects.filter(user=boss).count() == 0
    assert list(get_user_model().objects.filter(email__iexact=BOSS_EMAIL)) == [boss]
    if signed_in is not None:
        assert signed_in.email == ""
        assert not signed_in.is_superuser


def _page(client) -> str:
    return client.get("/login/").content.decode()


UNVERIFIED = [
    pytest.param("false", id="string-false"),
    pytest.param("False", id="string-False"),
    pytest.param("0", id="string-0"),
    pytest.param(0, id="zero"),
    pytest.param("no", id="string-no"),
    pytest.param(None, id="null"),
    pytest.param(MISSING, id="missing"),
    pytest.param([], id="empty-list"),
    pytest.param({}, id="empty-object"),
    pytest.param("yes", id="string-yes"),
    pytest.param(1, id="one"),
]


@pytest.mark.parametrize("verified", UNVERIFIED)
def test_an_address_the_provider_does_not_vouch_for_never_signs_in_as_its_owner(
    client, provider, boss, verified
):
    claims = {"sub": "attacker", "email": BOSS_EMAIL, "email_verified": verified}
    signed_in = _sign_on(client, provider, claims)
    _assert_boss_untouched(boss, signed_in)
    assert not AuditEvent.objects.filter(action="sso.account_linked").exists()


@pytest.mark.parametrize("verified", UNVERIFIED)
def test_an_address_the_provider_does_not_vouch_for_never_passes_the_allowed_domains(
    client, provider, boss, settings, verified
):
    settings.OIDC_ALLOWED_DOMAINS = ["corp.example"]
    claims = {"sub": "attacker", "email": BOSS_EMAIL, "email_verified": verified}
    assert _sign_on(client, provider, claims) is None
    _assert_boss_untouched(boss, None)
    assert get_user_model().objects.count() == 1
    assert (
        "Single sign-on is open to verified e-mail addresses in corp.example; the provider "
        "does not say that yours (boss@corp.example) is verified."
    ) in _page(client)
    assert AuditEvent.objects.filter(action="login.failed").exists()


def test_an_unverified_address_of_an_existing_person_is_refused_plainly_without_sign_up(
    client, provider, boss, settings
):
    settings.OIDC_CREATE_USERS = False
    claims = {"sub": "attacker", "email": BOSS_EMAIL, "email_verified": "false"}
    assert _sign_on(client, provider, claims) is None
    _assert_boss_untouched(boss, None)
    assert (
        "The identity provider does not say that your e-mail address boss@corp.example is "
        "verified, so it is not matched to a portal account"
    ) in _page(client)


@pytest.mark.parametrize("verified", [True, "true", "TRUE"])
def test_an_address_the_provider_vouches_for_links_to_its_owner(client, provider, boss, verified):
    claims = {"sub": "boss-at-the-provider", "email": BOSS_EMAIL, "email_verified": verified}
    assert _sign_on(client, provider, claims) == boss
    assert ExternalIdentity.objects.get(user=boss).subject == "boss-at-the-provider"


def test_userinfo_naming_another_subject_is_ignored_and_links_nobody(
    client, provider, boss, caplog
):
    caplog.set_level(logging.WARNING, logger="ecrportal.sso")
    userinfo = {"sub": "boss-at-the-provider", "email": BOSS_EMAIL, "email_verified": True}
    signed_in = _sign_on(client, provider, {"sub": "attacker"}, userinfo)
    _assert_boss_untouched(boss, signed_in)
    warnings = [r for r in caplog.records if r.name == "ecrportal.sso"]
    assert [r.getMessage() for r in warnings] == [
        "The identity provider's userinfo answer names another subject than the ID token; "
        "it is ignored and the ID token's claims alone are used."
    ]
    assert ACCESS_TOKEN not in caplog.text
    assert "boss-at-the-provider" not in caplog.text


def test_userinfo_naming_no_subject_is_ignored_and_links_nobody(client, provider, boss, caplog):
    caplog.set_level(logging.WARNING, logger="ecrportal.sso")
    userinfo = {"email": BOSS_EMAIL, "email_verified": True}
    signed_in = _sign_on(client, provider, {"sub": "attacker"}, userinfo)
    _assert_boss_untouched(boss, signed_in)
    assert "userinfo answer names no subject" in caplog.text


def test_userinfo_of_another_subject_cannot_vouch_for_the_id_tokens_address(
    client, provider, boss, settings
):
    settings.OIDC_ALLOWED_DOMAINS = ["corp.example"]
    userinfo = {"sub": "someone-else", "email_verified": True}
    claims = {"sub": "attacker", "email": BOSS_EMAIL}  # no email_verified
    assert _sign_on(client, provider, claims, userinfo) is None
    _assert_boss_untouched(boss, None)
    assert "does not say that yours (boss@corp.example) is verified" in _page(client)


def test_userinfo_vouching_for_its_own_address_does_not_vouch_for_the_id_tokens(
    client, provider, boss
):
    userinfo = {"sub": "attacker", "email": "attacker@elsewhere.example", "email_verified": True}
    claims = {"sub": "attacker", "email": BOSS_EMAIL}  # no email_verified
    signed_in = _sign_on(client, provider, claims, userinfo)
    _assert_boss_untouched(boss, signed_in)


def test_the_id_tokens_claims_win_over_userinfo_of_the_same_subject(client, provider, boss):
    userinfo = {"sub": "attacker", "email": BOSS_EMAIL, "email_verified": True}
    claims = {"sub": "attacker", "email": "attacker@corp.example", "email_verified": "false"}
    signed_in = _sign_on(client, provider, claims, userinfo)
    _assert_boss_untouched(boss, signed_in)


def test_userinfo_of_the_same_subject_may_vouch_for_the_same_address(client, provider, boss):
    userinfo = {"sub": "boss-at-the-provider", "email": BOSS_EMAIL, "email_verified": True}
    assert _sign_on(client, provider, {"sub": "boss-at-the-provider"}, userinfo) == boss


def test_a_claim_no_longer_granting_admin_does_not_demote_a_teams_last_admin(settings):
    settings.OIDC_ALLOWED_DOMAINS = []
    settings.OIDC_TEAM_CLAIM = "groups"
    settings.OIDC_TEAM_MAP = {"devs": [("platform", "editor")], "leads": [("platform", "admin")]}
    team = make_team("Platform")
    claims = {"sub": "lead", "email": "lead@corp.example", "email_verified": True}
    user = sso_sign_in(
        issuer="https://idp.example.com", claims={**claims, "groups": ["leads"]}, actor=ACTOR
    )
    for groups in (["devs"], "devs", []):  # made an editor, then removed: neither happens
        sso_sign_in(
            issuer="https://idp.example.com", claims={**claims, "groups": groups}, actor=ACTOR
        )
        assert Membership.objects.get(team=team, user=user).role == Role.ADMIN
    assert AuditEvent.objects.filter(action="sso.membership_synced").count() == 1  # added

    Membership.objects.create(team=team, user=make_user("other"), role=Role.ADMIN)
    sso_sign_in(
        issuer="https://idp.example.com", claims={**claims, "groups": ["devs"]}, actor=ACTOR
    )
    assert Membership.objects.get(team=team, user=user).role == Role.EDITOR


def test_a_group_claim_that_is_not_a_list_grants_nothing_and_breaks_nothing(settings):
    settings.OIDC_ALLOWED_DOMAINS = []
    settings.OIDC_TEAM_MAP = {"leads": [("platform", "admin")]}
    make_team("Platform")
    for groups in (7, {"leads": True}):
        claims = {"sub": "odd", "email": "odd@corp.example", "email_verified": True}
        user = sso_sign_in(
            issuer="https://idp.example.com", claims={**claims, "groups": groups}, actor=ACTOR
        )
        assert not user.memberships.exists()


def test_a_lost_first_sign_on_race_leaves_no_second_account_with_the_address(settings):
    settings.OIDC_ALLOWED_DOMAINS = []
    settings.OIDC_CREATE_USERS = True
    issuer, subject, email = "https://idp.example.com", "racer", "racer@corp.example"
    User = get_user_model()

    def parallel_sign_on_wins(sender, instance, created, **kwargs):
        # The same person's other first sign-on commits meanwhile: its account and link.
        post_save.disconnect(parallel_sign_on_wins, sender=User)
        winner = make_user("racer-winner", email=email)
        ExternalIdentity.objects.create(user=winner, issuer=issuer, subject=subject)

    post_save.connect(parallel_sign_on_wins, sender=User, weak=False)
    try:
        claims = {"sub": subject, "email": email, "email_verified": True}
        user = sso_sign_in(issuer=issuer, claims=claims, actor=ACTOR)
    finally:
        post_save.disconnect(parallel_sign_on_wins, sender=User)
    assert user.username == "racer-winner"
    assert list(User.objects.filter(email__iexact=email)) == [user]
