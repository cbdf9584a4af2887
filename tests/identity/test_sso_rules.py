"""Single sign-on's rules without a browser: which account claims stand for, team roles from
claims, local passwords turned off, and a provider that cannot be reached (issue 15)."""

import pytest
from django.contrib.auth import get_user_model

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.models import AuditEvent, ExternalIdentity, Membership, Role
from tasks_app.services.sso import SsoRefused, sso_sign_in
from tests.factories import PASSWORD, make_team, make_user

pytestmark = pytest.mark.django_db

ISSUER = "https://idp.example.com"
ACTOR = Actor(address="127.0.0.1", label="sso")


@pytest.fixture
def mapping(settings):
    settings.OIDC_TEAM_CLAIM = "groups"
    settings.OIDC_TEAM_MAP = {
        "devs": [("platform", "editor")],
        "leads": [("platform", "admin"), ("web", "viewer")],
    }
    settings.OIDC_ALLOWED_DOMAINS = []
    settings.OIDC_CREATE_USERS = True


def _claims(sub="s-1", email="dev@corp.example", **more):
    return {"sub": sub, "email": email, "email_verified": True, **more}


def test_group_claims_add_change_and_remove_mapped_memberships(mapping):
    # Each team has another admin: the claim may demote or remove this one.
    platform, web = make_team("Platform", pat=Role.ADMIN), make_team("Web", keep=Role.ADMIN)
    other = make_team("Other")
    user = sso_sign_in(issuer=ISSUER, claims=_claims(groups=["leads"]), actor=ACTOR)
    roles = dict(user.memberships.values_list("team__slug", "role"))
    assert roles == {"platform": "admin", "web": "viewer"}

    Membership.objects.create(team=other, user=user, role=Role.EDITOR)  # not mapped: kept
    sso_sign_in(issuer=ISSUER, claims=_claims(groups=["devs"]), actor=ACTOR)
    roles = dict(user.memberships.values_list("team__slug", "role"))
    assert roles == {"platform": "editor", "other": "editor"}
    assert platform.memberships.count() == 2  # pat, and the editor now
    assert web.memberships.count() == 1  # keep


def test_the_last_admin_of_a_team_is_not_removed_by_a_claim(mapping):
    make_team("Platform")
    user = sso_sign_in(issuer=ISSUER, claims=_claims(groups=["leads"]), actor=ACTOR)
    sso_sign_in(issuer=ISSUER, claims=_claims(groups=[]), actor=ACTOR)
    assert user.memberships.get(team__slug="platform").role == Role.ADMIN


def test_an_unverified_email_never_links_an_existing_account(mapping):
    make_user("dana", email="dev@corp.example")
    user = sso_sign_in(
        issuer=ISSUER, claims=_claims(email_verified=False, preferred_username="dev"), actor=ACTOR
    )
    assert user.username == "dev"
    assert user.email == ""
    assert ExternalIdentity.objects.get().user == user


def test_without_account_creation_unknown_people_are_refused(mapping, settings):
    settings.OIDC_CREATE_USERS = False
    with pytest.raises(SsoRefused, match="ask a portal administrator or a team admin"):
        sso_sign_in(issuer=ISSUER, claims=_claims(), actor=ACTOR)
    assert not get_user_model().objects.exists()


def test_taken_usernames_get_a_suffix_and_no_subject_is_refused(mapping):
    make_user("dev", email="other@corp.example")
    user = sso_sign_in(issuer=ISSUER, claims=_claims(preferred_username="dev"), actor=ACTOR)
    assert user.username == "dev-2"
    with pytest.raises(SsoRefused, match="no subject"):
        sso_sign_in(issuer=ISSUER, claims={"email": "x@corp.example"}, actor=ACTOR)


def test_with_local_passwords_off_only_break_glass_administrators_use_one(client, settings):
    settings.LOCAL_PASSWORDS = False
    settings.OIDC_ENABLED = True
    settings.OIDC_NAME = "Corp SSO"
    settings.BREAK_GLASS_USERS = ["root", "alice"]
    make_user("root", is_superuser=True, is_staff=True)
    make_user("alice")
    make_user("bob")

    page = client.get("/login/").content.decode()
    assert "Sign in with Corp SSO" in page
    assert "Break-glass sign-in" in page

    for username in ("bob", "alice"):  # not named; named but not an administrator
        response = client.post("/login/", {"username": username, "password": PASSWORD})
        assert response.status_code == 200
        assert "Passwords are turned off on this portal: sign in with Corp SSO." in (
            response.content.decode()
        )
    response = client.post("/login/", {"username": "root", "password": PASSWORD})
    assert response["Location"] == "/"


def test_an_unreachable_provider_is_explained_on_the_sign_in_page(client, settings):
    from tests.helpers import free_port

    settings.OIDC_ENABLED = True
    settings.OIDC_ISSUER = f"http://127.0.0.1:{free_port()}"
    settings.OIDC_TIMEOUT = 2
    caches.caches_clear()
    response = client.get("/oidc/authenticate/", follow=True)
    assert response.status_code == 200
    assert "Single sign-on failed: The identity provider did not answer" in (
        response.content.decode()
    )
    caches.caches_clear()


def test_the_sign_on_urls_do_not_exist_when_it_is_off(client, settings):
    settings.OIDC_ENABLED = False
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    assert not AuditEvent.objects.exists()


def test_the_client_secret_never_reaches_the_logs(tmp_path):
    import subprocess
    import sys

    from tests.helpers import ROOT, child_environ

    secret = "Sentinel-Oidc-Client-Secret-93"
    env = {
        **child_environ(portal_settings=False),
        "ECRPORTAL_DATA_DIR": str(tmp_path),
        "SECRET_KEY": "x" * 50,
        "ECRPORTAL_ENCRYPTION_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
        "ECRPORTAL_OIDC_ISSUER": "https://idp.example.com",
        "ECRPORTAL_OIDC_CLIENT_ID": "ecr-portal",
        "ECRPORTAL_OIDC_CLIENT_SECRET": secret,
    }
    code = (
        "import logging; logging.getLogger('ecrportal').error("
        f"'token request with %s failed', {secret!r})"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "token request with" in result.stderr + result.stdout
    assert secret not in result.stderr + result.stdout
