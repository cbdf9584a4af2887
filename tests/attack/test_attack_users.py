"""The people surface (the Users page), attacked (issue 22, items 6 and 12).

The attackers: a team admin who is let go and left a trust rule behind that admits CI jobs
of a repository they control; a portal administrator racing another one (two
administrators deactivating or demoting each other at the same moment); a deactivated
administrator whose session, or a request already in flight, outlives the deactivation.
What they control: trust rules of their own team (made before they leave), ID tokens of
their own CI jobs (signed by the real issuer, an https server on 127.0.0.1:
tests/oidc_issuer.py), their sessions and the timing of their requests. Every step goes
through the views and the API where a browser or CI job would; the races call the service
from two threads, each with its own database connection, on PostgreSQL only.
"""

import threading

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import connection

from tasks_app.identity.actor import Actor
from tasks_app.models import AuditEvent, Role, TrustedIssuer, TrustRule
from tasks_app.services import people
from tasks_app.services.people import PeopleError, user_deactivate, user_superuser_set
from tests.factories import make_connector, make_served_task, make_team, make_user
from tests.factories import token_client as client_with
from tests.helpers import require, wait_for

AUDIENCE = "https://ecr-portal.example.com"
REFUSALS = ("no longer an active portal administrator", "last active portal administrator")


def _root():
    return make_user("root", is_superuser=True, is_staff=True)


def _said(response) -> str:
    return response.content.decode()


# --- item 6: a deactivated person's trust rules admit no CI token --------------------------


@pytest.fixture
def backdoor(db, issuer, client):
    """alice, an admin of Platform, made a rule (on the rules page) that lets the jobs of
    acme/web — a repository she controls — act as the plan; then she is let go."""
    trusted = TrustedIssuer.objects.create(issuer=issuer.url, name="Test CI")
    team = make_team("Platform", alice=Role.ADMIN, ada=Role.ADMIN)
    plan, _, task, _ = make_served_task(team, make_connector(team))
    alice = team.members.get(username="alice")
    client.force_login(alice)
    response = client.post(
        f"/plans/{plan.id}/trust-rules/",
        {
            "name": "alice-web",
            "issuer": trusted.id,
            "audience": AUDIENCE,
            "conditions": "repository=acme/web",
        },
    )
    assert response.status_code == 302, _said(response)
    client.logout()
    rule = TrustRule.objects.get()
    assert rule.created_by == alice
    path = f"/api/v1/tasks/{task.id}/variables"
    assert client_with(issuer.token()).get(path).status_code == 200  # it works, for now
    return {"team": team, "alice": alice, "rule": rule, "path": path}


def _deactivate_alice(client, backdoor):
    """A portal administrator deactivates alice on the Users page; (root, the page)."""
    root = _root()
    client.force_login(root)
    return root, client.post(f"/users/{backdoor['alice'].pk}/deactivate/", follow=True)


def test_a_deactivated_persons_trust_rule_admits_no_ci_token(client, issuer, backdoor):
    _, page = _deactivate_alice(client, backdoor)
    used = AuditEvent.objects.filter(action="token.oidc_used").count()

    response = client_with(issuer.token()).get(backdoor["path"])
    assert response.status_code == 401
    assert "variables" not in response.json()  # a refusal, nothing served
    assert AuditEvent.objects.filter(action="token.oidc_used").count() == used
    assert "1 trust rule(s) disabled" in _said(page)
    event = AuditEvent.objects.get(action="trust_rule.disabled")
    assert event.team == backdoor["team"]  # in the team's audit log
    assert "alice, who made it, was deactivated." in event.summary


def test_reactivating_the_author_does_not_bring_the_rule_back(client, issuer, backdoor):
    _deactivate_alice(client, backdoor)
    client.post(f"/users/{backdoor['alice'].pk}/activate/")
    backdoor["alice"].refresh_from_db()
    assert backdoor["alice"].is_active
    assert client_with(issuer.token()).get(backdoor["path"]).status_code == 401


def test_the_users_page_lists_the_rule_disabled_with_its_author(client, backdoor):
    _deactivate_alice(client, backdoor)
    page = _said(client.get("/users/"))
    assert "Trust rules disabled with their author" in page
    section = page.split("Trust rules disabled with their author", 1)[1]
    assert "alice-web" in section
    assert "WEB-BUILD" in section
    assert "repository=acme/web" in section
    assert "alice, who made it, was deactivated." in section
    assert f"/users/trust-rules/{backdoor['rule'].id}/enable/" in section


def test_a_superuser_enables_the_rule_again_and_answers_for_it(client, issuer, backdoor):
    root, _ = _deactivate_alice(client, backdoor)
    response = client.post(f"/users/trust-rules/{backdoor['rule'].id}/enable/", follow=True)
    assert response.redirect_chain[-1][0] == "/users/"
    assert "Enabled the trust rule alice-web of WEB-BUILD; it is yours now." in _said(response)

    rule = TrustRule.objects.get()
    assert rule.created_by == root
    assert rule.disabled_at is None
    assert client_with(issuer.token()).get(backdoor["path"]).status_code == 200
    event = AuditEvent.objects.get(action="trust_rule.enabled")
    assert (event.team, event.actor) == (backdoor["team"], root)
    assert "Trust rules disabled with their author" not in _said(client.get("/users/"))


def test_no_one_but_a_portal_administrator_enables_a_disabled_rule(client, issuer, backdoor):
    _deactivate_alice(client, backdoor)
    url = f"/users/trust-rules/{backdoor['rule'].id}/enable/"
    ada = backdoor["team"].members.get(username="ada")  # the team's other admin
    for someone in (ada, make_user("bob")):
        client.force_login(someone)
        assert client.post(url).status_code == 403
    client.logout()
    assert client.post(url)["Location"].startswith("/login/")
    assert TrustRule.objects.get().disabled_at is not None
    assert not AuditEvent.objects.filter(action="trust_rule.enabled").exists()
    assert client_with(issuer.token()).get(backdoor["path"]).status_code == 401


# --- the administrators themselves --------------------------------------------------------


@pytest.mark.django_db
def test_the_last_active_administrator_cannot_deactivate_or_demote_themselves(client):
    root = _root()
    make_user("ghost", is_superuser=True, is_staff=True, is_active=False)  # not active
    client.force_login(root)
    response = client.post(f"/users/{root.pk}/deactivate/", follow=True)
    assert "You cannot deactivate your own account." in _said(response)
    response = client.post(f"/users/{root.pk}/withdraw-superuser/", follow=True)
    assert "root is the last active portal administrator." in _said(response)
    root.refresh_from_db()
    assert (root.is_active, root.is_superuser, root.is_staff) == (True, True, True)
    assert not AuditEvent.objects.filter(action__startswith="user.").exists()


@pytest.mark.django_db
def test_a_deactivated_administrators_stale_session_and_request_in_flight_change_nothing(
    client,
):
    root = _root()
    eve = make_user("eve", is_superuser=True, is_staff=True)
    sam = make_user("sam", is_superuser=True, is_staff=True)
    carol = make_user("carol")
    eves_browser = client.__class__()
    eves_browser.force_login(eve)
    eve_as_her_request_saw_her = get_user_model().objects.get(pk=eve.pk)

    client.force_login(root)
    client.post(f"/users/{eve.pk}/deactivate/")

    # Her next request is signed out.
    assert eves_browser.post(f"/users/{carol.pk}/deactivate/")["Location"].startswith("/login/")
    assert eves_browser.post(f"/users/{sam.pk}/withdraw-superuser/")["Location"].startswith(
        "/login/"
    )
    # A request of hers that passed the sign-in check before she was deactivated, and
    # reaches the service after, is refused there.
    stale = Actor(user=eve_as_her_request_saw_her)
    with pytest.raises(PeopleError, match="no longer an active portal administrator"):
        user_deactivate(user=carol, actor=stale)
    with pytest.raises(PeopleError, match="no longer an active portal administrator"):
        user_superuser_set(user=sam, superuser=False, actor=stale)
    carol.refresh_from_db()
    sam.refresh_from_db()
    assert carol.is_active
    assert sam.is_superuser
    assert list(AuditEvent.objects.values_list("action", flat=True)) == ["user.deactivated"]


def test_every_administrators_change_refuses_a_request_whose_author_was_deactivated(db):
    """Not only deactivating and demoting: granting, creating, resetting, reactivating
    herself, lending the host identity and enabling a trust rule all check, under lock,
    that the actor is an active administrator now (the helper's probe did all of these)."""
    from tasks_app.services.people import (
        team_host_credentials_set,
        user_activate,
        user_create,
        user_password_reset,
    )
    from tasks_app.services.workload import trust_rule_enable

    root = _root()
    eve = make_user("eve", is_superuser=True, is_staff=True)
    mallory = make_user("mallory")
    stale = Actor(user=get_user_model().objects.get(pk=eve.pk))
    user_deactivate(user=eve, actor=Actor(user=root))
    team = make_team("Platform")
    refused = "no longer an active portal administrator"
    with pytest.raises(PeopleError, match=refused):
        user_superuser_set(user=mallory, superuser=True, actor=stale)
    with pytest.raises(PeopleError, match=refused):
        user_create(username="m2", email="m2@example.com", superuser=True, actor=stale)
    with pytest.raises(PeopleError, match=refused):
        user_password_reset(user=root, actor=stale)
    with pytest.raises(PeopleError, match=refused):
        user_activate(user=eve, actor=stale)
    with pytest.raises(PeopleError, match=refused):
        team_host_credentials_set(team=team, allowed=True, actor=stale)
    with pytest.raises(PermissionDenied):
        trust_rule_enable(rule=TrustRule(), actor=stale)
    superusers = get_user_model().objects.filter(is_superuser=True, is_active=True)
    assert sorted(superusers.values_list("username", flat=True)) == ["root"]
    team.refresh_from_db()
    assert not team.host_credentials_allowed


# --- item 12: two administrators at once, on PostgreSQL ------------------------------------


def _race(monkeypatch, calls) -> list:
    """Run the two calls at once, each in a thread with its own connection. The first to
    reach its audit record (its checks passed, its change made, its transaction open) is
    held there until the other has finished or waits on a lock; then both go on. Returns
    each call's outcome: ("done", result) or ("refused", message)."""
    require(
        connection.vendor == "postgresql",
        "this race needs row locks across two connections, which SQLite does not have; "
        "set DATABASE_URL=postgres://… to run it",
    )
    real = people.audit_record
    entered, release = threading.Event(), threading.Event()
    first = threading.Lock()
    outcomes: list = []
    barrier = threading.Barrier(len(calls))

    def held(**kwargs):
        if first.acquire(blocking=False):
            entered.set()
            assert release.wait(30), "never released"
        return real(**kwargs)

    monkeypatch.setattr(people, "audit_record", held)

    def run(call):
        try:
            barrier.wait(30)
            outcomes.append(("done", call()))
        except PeopleError as e:
            outcomes.append(("refused", str(e)))
        except Exception as e:  # reported by the test, not lost in the thread
            outcomes.append(("error", repr(e)))
        finally:
            connection.close()

    def lock_waiters() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
            )
            return cursor.fetchone()[0]

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    try:
        wait_for(
            lambda: entered.is_set() and (len(outcomes) >= 1 or lock_waiters() >= 1),
            timeout=30,
            interval=0.02,
            what="one call held with its transaction open, the other finished or waiting",
        )
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def _one_refused(outcomes) -> None:
    assert len(outcomes) == 2, outcomes
    refused = [message for kind, message in outcomes if kind == "refused"]
    assert [kind for kind, _ in outcomes].count("done") == 1, outcomes
    assert len(refused) == 1, outcomes
    assert any(reason in refused[0] for reason in REFUSALS), outcomes


def _active_administrators() -> list:
    return list(
        get_user_model()
        .objects.filter(is_superuser=True, is_active=True)
        .values_list("username", flat=True)
    )


@pytest.mark.django_db(transaction=True)
def test_two_administrators_deactivating_each_other_at_once_leave_one(monkeypatch):
    a = make_user("admin-a", is_superuser=True, is_staff=True)
    b = make_user("admin-b", is_superuser=True, is_staff=True)

    def deactivate(target, actor):
        User = get_user_model()  # each request loads its own instances
        return user_deactivate(
            user=User.objects.get(pk=target.pk), actor=Actor(user=User.objects.get(pk=actor.pk))
        )

    outcomes = _race(monkeypatch, [lambda: deactivate(b, a), lambda: deactivate(a, b)])
    assert len(_active_administrators()) == 1, outcomes
    _one_refused(outcomes)
    assert "no longer an active portal administrator" in str(outcomes)
    assert AuditEvent.objects.filter(action="user.deactivated").count() == 1


@pytest.mark.parametrize("whose", ["each other's", "their own"])
@pytest.mark.django_db(transaction=True)
def test_two_administrators_withdrawing_rights_at_once_leave_one(monkeypatch, whose):
    a = make_user("admin-a", is_superuser=True, is_staff=True)
    b = make_user("admin-b", is_superuser=True, is_staff=True)
    target_of_a, target_of_b = (b, a) if whose == "each other's" else (a, b)

    def withdraw(target, actor):
        User = get_user_model()  # each request loads its own instances
        return user_superuser_set(
            user=User.objects.get(pk=target.pk),
            superuser=False,
            actor=Actor(user=User.objects.get(pk=actor.pk)),
        )

    outcomes = _race(
        monkeypatch, [lambda: withdraw(target_of_a, a), lambda: withdraw(target_of_b, b)]
    )
    assert len(_active_administrators()) == 1, outcomes
    _one_refused(outcomes)
    assert AuditEvent.objects.filter(action="user.superuser_withdrawn").count() == 1
