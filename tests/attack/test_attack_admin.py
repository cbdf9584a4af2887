"""The Django admin surface, attacked (issue 22, items 7 and 14).

The attacker: a portal administrator's session used carelessly (a borrowed laptop, a tab
left open), or an administrator going around the Users page's rules on purpose. What they
control: every field of every admin form they POST, including fields the page does not
show (is_active, is_superuser, is_staff, created_by, disabled_at), the admin's URLs (add,
delete, password), and the issuers and trust rules they type in. Also: a staff account that
is not a portal administrator. The CI issuer whose tokens the rules admit is a real https
server on 127.0.0.1 (tests/oidc_issuer.py); ID tokens go through the API as a CI job's would.
"""

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.lib.crypto import plain
from tasks_app.models import (
    ApiToken,
    AuditEvent,
    Plan,
    Role,
    SigningKey,
    TrustedIssuer,
    TrustRule,
)
from tasks_app.services import issuer as own_issuer
from tasks_app.services.tokens import token_create
from tests.factories import PASSWORD, make_connector, make_served_task, make_team, make_user
from tests.factories import token_client as client_with

pytestmark = pytest.mark.django_db

AUDIENCE = "https://ecr-portal.example.com"
PORTAL = "https://ecr-portal.example.com"


@pytest.fixture(autouse=True)
def _portal(settings):
    settings.ISSUER_URL = PORTAL
    settings.API_CACHE_SECONDS = 60  # a stale trust cache would show for a minute
    caches.caches_clear()
    yield
    caches.caches_clear()


@pytest.fixture
def root(client):
    """The portal's only administrator, signed in to the admin."""
    user = make_user("root", is_superuser=True, is_staff=True, first_name="Ro", last_name="Ot")
    client.force_login(user)
    return user


@pytest.fixture
def trusted(issuer):
    return TrustedIssuer.objects.create(issuer=issuer.url, name="Test CI")


@pytest.fixture
def served(db):
    team = make_team("Platform", alice=Role.ADMIN)
    plan, job, task, _ = make_served_task(team, make_connector(team))
    return {"team": team, "plan": plan, "job": job, "task": task}


def _user_form(user, **changes) -> dict:
    """Everything a full user change form could hold (Django's own one included), as an
    attacker posts it: fields the page shows read-only are sent all the same."""
    joined = user.date_joined
    form = {
        "username": user.username,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "email": user.email,
        "is_active": "on",
        "is_staff": "on",
        "is_superuser": "on",
        "date_joined_0": joined.strftime("%Y-%m-%d"),
        "date_joined_1": joined.strftime("%H:%M:%S"),
        "last_login_0": "",
        "last_login_1": "",
        "initial-date_joined_0": joined.strftime("%Y-%m-%d"),
        "initial-date_joined_1": joined.strftime("%H:%M:%S"),
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def _rule_form(served, trusted, **changes) -> dict:
    form = {
        "team": str(served["team"].pk),
        "plan": str(served["plan"].pk),
        "job": "",
        "issuer": str(trusted.pk),
        "audience": AUDIENCE,
        "conditions": json.dumps({"repository": "acme/web"}),
        "name": "web",
    }
    form.update(changes)
    return form


def _user_change(user) -> str:
    return f"/admin/auth/user/{user.pk}/change/"


# --- item 7: the user admin does not go around the Users page -----------------------------


def test_the_last_administrator_cannot_untick_their_own_superuser_or_staff_or_active(client, root):
    response = client.post(
        _user_change(root), _user_form(root, is_superuser=None, is_staff=None, is_active=None)
    )
    assert response.status_code == 302, response.content[:2000]  # saved, the boxes ignored
    root.refresh_from_db()
    assert (root.is_superuser, root.is_staff, root.is_active) == (True, True, True)
    assert client.get("/admin/").status_code == 200  # still an administrator


def test_unticking_active_for_another_user_changes_nothing_and_their_token_still_works(
    client, root, served
):
    alice = served["team"].members.get(username="alice")
    _, raw = token_create(
        plan=served["plan"], job=served["job"], name="ci", expires_at=None, actor=Actor(alice)
    )
    response = client.post(
        _user_change(alice),
        _user_form(alice, is_active=None, is_staff=None, is_superuser=None, first_name="Al"),
    )
    assert response.status_code == 302, response.content[:2000]
    alice.refresh_from_db()
    assert alice.first_name == "Al"  # the form was taken; only the tick box was not
    assert alice.is_active
    assert not ApiToken.objects.filter(created_by=alice).exclude(revoked_at=None).exists()
    assert not AuditEvent.objects.filter(action="user.deactivated").exists()
    path = f"/api/v1/tasks/{served['task'].id}/variables"
    assert client_with(raw).get(path).status_code == 200
    signed_in = Client().post("/login/", {"username": "alice", "password": PASSWORD})
    assert signed_in.status_code == 302  # she signs in as before
    alice.refresh_from_db()
    assert alice.is_active


def test_ticking_superuser_for_another_user_makes_no_administrator(client, root):
    mallory = make_user("mallory")
    response = client.post(_user_change(mallory), _user_form(mallory))  # every box ticked
    assert response.status_code == 302
    mallory.refresh_from_db()
    assert (mallory.is_superuser, mallory.is_staff) == (False, False)
    assert not AuditEvent.objects.filter(action="user.superuser_granted").exists()
    client.force_login(mallory)
    assert client.get("/admin/auth/user/").status_code in (302, 403)


def test_the_user_admin_makes_no_accounts(client, root):
    add = "/admin/auth/user/add/"
    assert client.get(add).status_code == 403
    form = {
        "username": "sneaky",
        "password1": "Xq9!long-password",
        "password2": "Xq9!long-password",
        "usable_password": "true",
    }
    assert client.post(add, form).status_code == 403
    assert not get_user_model().objects.filter(username="sneaky").exists()


def test_the_user_admin_deletes_no_accounts(client, root):
    alice = make_user("alice")
    delete = f"/admin/auth/user/{alice.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 403
    changelist = "/admin/auth/user/"
    action = {"action": "delete_selected", "_selected_action": [alice.pk, root.pk], "post": "yes"}
    client.post(changelist, action)
    alice.refresh_from_db()
    root.refresh_from_db()  # both still there
    assert alice.is_active
    assert root.is_superuser


def test_the_user_admin_has_no_password_form(client, root):
    """Django's admin answers an unknown object URL with a redirect to the admin's index
    (the "user with ID '2/password' doesn't exist" message): no password form either way."""
    alice = make_user("alice")
    before = alice.password
    password = f"/admin/auth/user/{alice.pk}/password/"
    form = {"password1": "Xq9!long-password", "password2": "Xq9!long-password"}
    for answer in [
        client.get(password, follow=True),
        client.post(password, {**form, "usable_password": "true"}, follow=True),
    ]:
        assert answer.redirect_chain[-1:] in ([], [("/admin/", 302)]), answer.redirect_chain
        assert 'name="password1"' not in answer.content.decode()
    alice.refresh_from_db()
    assert alice.password == before
    assert "/password/" not in client.get(_user_change(alice)).content.decode()


def test_a_name_or_address_corrected_in_the_admin_is_audited_under_the_admins_name(client, root):
    alice = make_user("alice")
    response = client.post(
        _user_change(alice), _user_form(alice, email="alice@new.example.com", last_name="Liddell")
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="admin.user.updated")
    assert event.actor.username == "root"
    assert event.changes == {"last_name": "Liddell", "email": "alice@new.example.com"}
    assert "is_active" not in event.changes
    assert "is_superuser" not in event.changes


def test_staff_who_are_not_administrators_get_no_admin_pages(client, served):
    clerk = make_user("clerk", is_staff=True)
    client.force_login(clerk)
    alice = served["team"].members.get(username="alice")
    for url in [
        "/admin/auth/user/",
        _user_change(clerk),
        _user_change(alice),
        "/admin/tasks_app/trustrule/add/",
        "/admin/tasks_app/trustedissuer/add/",
        "/admin/tasks_app/signingkey/",
    ]:
        assert client.get(url).status_code in (302, 403), url
    client.post(_user_change(clerk), _user_form(clerk))  # tick superuser on themselves
    client.post(
        "/admin/tasks_app/trustedissuer/add/", {"issuer": "https://x.example", "name": "x"}
    )
    clerk.refresh_from_db()
    assert not clerk.is_superuser
    assert not TrustedIssuer.objects.exists()


def test_staff_with_permissions_left_from_the_old_admin_get_no_admin_pages_either(client, root):
    """The old user admin could tick is_staff and grant model permissions without making a
    portal administrator; such an account still exists after the upgrade. With
    auth.change_user it could set an administrator's address to one it holds at the
    identity provider, and single sign-on links a verified address to that account."""
    clerk = make_user("clerk", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_user", "change_user", "add_trustedissuer", "add_trustrule"]
        )
    )
    client.force_login(clerk)
    client.post(_user_change(root), _user_form(root, email="clerk@evil.example"))
    evil = {"issuer": "https://evil.example", "name": "x"}
    client.post("/admin/tasks_app/trustedissuer/add/", evil)
    root.refresh_from_db()
    assert root.email == "root@example.com"
    assert not TrustedIssuer.objects.exists()
    assert client.get("/admin/auth/user/").status_code in (302, 403)


# --- issuers and trust rules made in the admin: the model's rules, the admin's name --------


def test_a_trust_rule_that_pins_no_owner_is_refused_in_the_admin(client, root, served, trusted):
    response = client.post(
        "/admin/tasks_app/trustrule/add/",
        _rule_form(served, trusted, conditions=json.dumps({"sub": "*"})),
    )
    assert response.status_code == 200
    assert "Pin an owner" in response.content.decode()
    assert not TrustRule.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        PORTAL,
        PORTAL + "/",
        "https://ECR-Portal.Example.COM",
        "HTTPS://ecr-portal.example.com/",
        "  https://ecr-portal.EXAMPLE.com/  ",
    ],
)
def test_the_portals_own_issuer_is_refused_in_the_admin_in_any_letter_case(client, root, url):
    response = client.post("/admin/tasks_app/trustedissuer/add/", {"issuer": url, "name": "Me"})
    assert response.status_code == 200
    assert "portal&#x27;s own issuer" in response.content.decode()
    assert not TrustedIssuer.objects.exists()


def test_the_portals_own_issuer_cannot_be_edited_into_an_issuer_in_the_admin(
    client, root, trusted
):
    change = f"/admin/tasks_app/trustedissuer/{trusted.pk}/change/"
    response = client.post(change, {"issuer": "https://ECR-PORTAL.example.com/", "name": "x"})
    assert response.status_code == 200
    trusted.refresh_from_db()
    assert trusted.issuer.startswith("https://127.0.0.1:")


def test_issuers_and_rules_made_in_the_admin_are_under_the_admins_name_and_audited(
    client, root, served, issuer
):
    other = make_user("someone-else")
    response = client.post(
        "/admin/tasks_app/trustedissuer/add/",
        {"issuer": issuer.url + "/", "name": "CI", "created_by": other.pk},
    )
    assert response.status_code == 302, response.content[:2000]
    trusted = TrustedIssuer.objects.get()
    assert (trusted.issuer, trusted.created_by) == (issuer.url, root)
    forged = _rule_form(served, trusted, created_by=str(other.pk), disabled_at_0="2020-01-01")
    forged.update(disabled_at_1="00:00:00", disabled_reason="looks disabled, is not")
    assert client.post("/admin/tasks_app/trustrule/add/", forged).status_code == 302
    rule = TrustRule.objects.get()
    assert rule.created_by == root
    assert (rule.disabled_at, rule.disabled_reason) == (None, "")
    created = AuditEvent.objects.filter(action__startswith="admin.trust").order_by("created")
    assert [e.action for e in created] == [
        "admin.trustedissuer.created",
        "admin.trustrule.created",
    ]
    assert {e.actor.username for e in created} == {"root"}


def test_a_rule_added_in_the_admin_admits_at_once_and_a_deleted_one_refuses_at_once(
    client, root, served, issuer, trusted
):
    path = f"/api/v1/tasks/{served['task'].id}/variables"
    # The process has cached "this issuer, no rules" for a minute.
    refused = client_with(issuer.token()).get(path)
    assert refused.status_code == 401
    assert "no trust rule names the issuer" in refused.json()["detail"]

    assert (
        client.post("/admin/tasks_app/trustrule/add/", _rule_form(served, trusted)).status_code
        == 302
    )
    accepted = client_with(issuer.token()).get(path)
    assert accepted.status_code == 200, accepted.content
    rule = TrustRule.objects.get()

    delete = f"/admin/tasks_app/trustrule/{rule.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 302
    assert not TrustRule.objects.exists()
    after = client_with(issuer.token()).get(path)
    assert after.status_code == 401, after.content
    assert AuditEvent.objects.filter(action="admin.trustrule.deleted").count() == 1


def test_an_issuer_deleted_in_the_admin_refuses_its_tokens_at_once(
    client, root, served, issuer, trusted
):
    TrustRule.objects.create(
        team=served["team"],
        plan=served["plan"],
        issuer=trusted,
        audience=AUDIENCE,
        conditions={"repository": "acme/web"},
        name="web",
    )
    path = f"/api/v1/tasks/{served['task'].id}/variables"
    assert client_with(issuer.token()).get(path).status_code == 200  # now cached
    delete = f"/admin/tasks_app/trustedissuer/{trusted.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 302
    after = client_with(issuer.token()).get(path)
    assert after.status_code == 401
    assert "is not trusted" in after.json()["detail"]


def test_rules_deleted_with_the_changelists_delete_action_refuse_at_once_and_are_audited(
    client, root, served, issuer, trusted
):
    rule = TrustRule.objects.create(
        team=served["team"],
        plan=served["plan"],
        issuer=trusted,
        audience=AUDIENCE,
        conditions={"repository": "acme/web"},
        name="web",
    )
    path = f"/api/v1/tasks/{served['task'].id}/variables"
    assert client_with(issuer.token()).get(path).status_code == 200  # now cached
    action = {"action": "delete_selected", "_selected_action": [str(rule.pk)], "post": "yes"}
    assert client.post("/admin/tasks_app/trustrule/", action).status_code == 302
    assert not TrustRule.objects.exists()
    assert AuditEvent.objects.filter(action="admin.trustrule.deleted").count() == 1
    assert client_with(issuer.token()).get(path).status_code == 401


def test_a_disabled_rule_cannot_be_enabled_again_through_the_admin(
    client, root, served, issuer, trusted
):
    rule = TrustRule.objects.create(
        team=served["team"],
        plan=served["plan"],
        issuer=trusted,
        audience=AUDIENCE,
        conditions={"repository": "acme/web"},
        name="web",
        disabled_at=now(),
        disabled_reason="alice, who made it, was deactivated.",
    )
    change = f"/admin/tasks_app/trustrule/{rule.pk}/change/"
    page = client.get(change)
    assert page.status_code == 200
    form = _rule_form(served, trusted, disabled_at_0="", disabled_at_1="", disabled_reason="")
    assert client.post(change, form).status_code == 302
    rule.refresh_from_db()
    assert rule.disabled_at is not None
    assert rule.disabled_reason == "alice, who made it, was deactivated."
    path = f"/api/v1/tasks/{served['task'].id}/variables"
    assert client_with(issuer.token()).get(path).status_code == 401


def test_a_rule_cannot_be_filed_under_another_team_than_its_plans(client, root, served, trusted):
    other = make_team("Other")
    form = _rule_form(served, trusted, team=str(other.pk))
    assert client.post("/admin/tasks_app/trustrule/add/", form).status_code == 302
    assert TrustRule.objects.get().team == served["team"]
    foreign = Plan.objects.create(team=other, key="OTHER", name="Other")
    form = _rule_form(served, trusted, job=str(foreign.jobs.create(key="J", name="J").pk))
    response = client.post("/admin/tasks_app/trustrule/add/", {**form, "name": "cross"})
    assert response.status_code == 200
    assert "Choose a job of the rule" in response.content.decode()


def test_every_change_form_of_these_models_answers_hostile_input_without_a_500(
    client, root, served, trusted
):
    own_issuer.signing_key_ensure()
    rule = TrustRule.objects.create(
        team=served["team"],
        plan=served["plan"],
        issuer=trusted,
        audience=AUDIENCE,
        conditions={"repository": "acme/web"},
        name="web",
        disabled_at=now(),
        disabled_reason="x",
    )
    alice = served["team"].members.get(username="alice")
    key = SigningKey.objects.get()
    pages = {
        _user_change(alice): _user_form(alice, email="not an address", username="a\x00b"),
        f"/admin/tasks_app/trustedissuer/{trusted.pk}/change/": {
            "issuer": "https://a\x00.example",
            "name": "",
        },
        f"/admin/tasks_app/trustrule/{rule.pk}/change/": _rule_form(
            served, trusted, conditions="{not json", audience="a\x00", plan="nope"
        ),
        "/admin/tasks_app/trustrule/add/": _rule_form(
            served, trusted, conditions=json.dumps(["a", "list"]), job="00000000-0000"
        ),
        "/admin/tasks_app/trustedissuer/add/": {"issuer": "javascript:alert(1)", "name": "x"},
        f"/admin/tasks_app/signingkey/{key.pk}/change/": {"private_key": "x", "kid": "y"},
    }
    for url, form in pages.items():
        shown = client.get(url)
        assert shown.status_code == 200, url
        response = client.post(url, form)
        assert response.status_code in (200, 403), (url, response.status_code)
    alice.refresh_from_db()
    trusted.refresh_from_db()
    rule.refresh_from_db()
    assert alice.email == "alice@example.com"
    assert trusted.name == "Test CI"
    assert rule.conditions == {"repository": "acme/web"}


def test_the_signing_keys_page_shows_no_private_key(client, root):
    own_issuer.signing_key_ensure()
    key = SigningKey.objects.get()
    page = client.get(f"/admin/tasks_app/signingkey/{key.pk}/change/").content.decode()
    assert "PRIVATE KEY" not in page
    assert plain(key.private_key).splitlines()[1] not in page
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key FROM tasks_app_signingkey")
        (stored,) = cursor.fetchone()
    assert stored not in page  # nor its ciphertext
