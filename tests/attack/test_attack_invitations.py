"""The invitation surface, attacked (issue 22, items 6 and 11).

The attackers: whoever got hold of someone else's invitation link (a forwarded mail, a
shared screen, a chat log) — bob, signed in with his own account, or an anonymous person
who wants a fresh account with the invited address — and a team admin who is let go and
prepared a link to their own private address first. What they control: the link (its
signed code), their own account and its e-mail address, the new-account form (username,
password), and the timing of their requests. Every step goes through the views, as a
browser's would.
"""

import re

import pytest
from django.contrib.auth import get_user_model

from tasks_app.identity.actor import Actor
from tasks_app.models import AuditEvent, Invitation, Membership, Role
from tasks_app.services.people import invitation_create, invitation_link
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long enough passphrase 42"


def _path(invitation) -> str:
    return re.sub(r"^https?://[^/]+", "", invitation_link(invitation))


def _new_account(username: str) -> dict:
    return {"username": username, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}


@pytest.fixture
def team_a(db):
    return make_team("Team A", alice=Role.ADMIN, ada=Role.ADMIN)


@pytest.fixture
def for_erin(team_a):
    """alice invited erin@example.com to Team A as an admin; the link leaked."""
    return invitation_create(
        team=team_a,
        email="erin@example.com",
        role=Role.ADMIN,
        actor=Actor(user=team_a.members.get(username="alice")),
    )


def _nobody_joined(team, invitation) -> None:
    assert set(team.members.values_list("username", flat=True)) == {"alice", "ada"}
    invitation.refresh_from_db()
    assert invitation.state == "pending"
    assert not AuditEvent.objects.filter(action="invitation.accepted").exists()


# --- item 11: an invitation is for its address, not for whoever holds the link -------------


def test_bob_signed_in_with_his_own_address_is_refused_the_link_he_got_hold_of(
    client, team_a, for_erin
):
    client.force_login(make_user("bob"))
    response = client.get(_path(for_erin))
    assert response.status_code == 403
    page = response.content.decode()
    assert "This invitation is for erin@example.com, and you are signed in as bob" in page
    assert "(bob@example.com)" in page
    assert "Join Team A</button>" not in page  # no button to press
    _nobody_joined(team_a, for_erin)


def test_bob_posting_the_link_joins_nothing_and_is_told_why(client, team_a, for_erin):
    client.force_login(make_user("bob"))
    response = client.post(_path(for_erin), follow=True)
    assert response.redirect_chain[0][0] == "/teams/"
    assert "This invitation is for erin@example.com" in response.content.decode()
    assert not Membership.objects.filter(user__username="bob").exists()
    _nobody_joined(team_a, for_erin)


@pytest.mark.parametrize(
    "email",
    [
        "",  # an account made without an address
        "erin@example.com.evil.net",
        "erin@example.co",
        "xerin@example.com",
        "erin+team@example.com",
    ],
)
def test_an_account_whose_address_only_looks_like_the_invited_one_is_refused(
    client, team_a, for_erin, email
):
    client.force_login(make_user("mallory", email=email))
    assert client.get(_path(for_erin)).status_code == 403
    client.post(_path(for_erin))
    assert not Membership.objects.filter(user__username="mallory").exists()
    _nobody_joined(team_a, for_erin)


def test_the_link_bob_tried_still_works_for_the_invited_person_in_any_letter_case(
    client, team_a, for_erin
):
    client.force_login(make_user("bob"))
    client.post(_path(for_erin))  # refused: the link is not spent

    erin = make_user("erin", email="Erin@EXAMPLE.com")
    client.force_login(erin)
    page = client.get(_path(for_erin))
    assert page.status_code == 200
    assert "You are signed in as erin" in page.content.decode()
    response = client.post(_path(for_erin))
    assert response["Location"] == f"/teams/{team_a.id}/"
    assert Membership.objects.get(team=team_a, user=erin).role == Role.ADMIN
    for_erin.refresh_from_db()
    assert for_erin.accepted_by == erin


@pytest.mark.parametrize(
    ("existing", "active"),
    [
        ("erin@example.com", True),
        ("ERIN@Example.COM", True),  # the same address in other letters
        ("erin@example.com", False),  # a deactivated account's address, taken over
    ],
)
def test_an_anonymous_holder_of_the_link_cannot_make_a_second_account_with_the_address(
    client, team_a, for_erin, existing, active
):
    make_user("erin", email=existing, is_active=active)

    page = client.get(_path(for_erin))
    assert page.status_code == 200
    text = page.content.decode()
    assert "An account with this e-mail address exists already" in text
    assert "Create your account" not in text  # sign-in is all the page offers
    assert 'name="password1"' not in text

    response = client.post(_path(for_erin), _new_account("mallory"))
    assert response.status_code == 400
    assert "An account with this e-mail address exists already" in response.content.decode()
    (error,) = response.context["form"].errors["username"]
    assert error.startswith("An account with erin@example.com exists already")
    assert not get_user_model().objects.filter(username="mallory").exists()
    assert get_user_model().objects.filter(email__iexact="erin@example.com").count() == 1
    assert "_auth_user_id" not in client.session  # signed in as no one
    _nobody_joined(team_a, for_erin)


# --- item 6: a deactivated team admin's links stop working ----------------------------------


def test_a_deactivated_team_admins_pending_invitation_is_withdrawn_for_good(client, team_a):
    alice = team_a.members.get(username="alice")
    ada = team_a.members.get(username="ada")
    # Before she is let go, alice invites her own private address as an admin.
    backdoor = invitation_create(
        team=team_a, email="alice.private@example.net", role=Role.ADMIN, actor=Actor(user=alice)
    )
    honest = invitation_create(
        team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=ada)
    )

    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(root)
    users_page = client.post(f"/users/{alice.pk}/deactivate/", follow=True)
    client.logout()

    refused = client.get(_path(backdoor))
    assert refused.status_code == 410
    assert "withdrawn" in refused.content.decode()
    refused = client.post(_path(backdoor), _new_account("alice2"))
    assert refused.status_code == 410
    assert not get_user_model().objects.filter(username="alice2").exists()
    assert "1 invitation(s) withdrawn" in users_page.content.decode()
    backdoor.refresh_from_db()
    assert backdoor.state == "revoked"
    event = AuditEvent.objects.get(action="invitation.revoked")
    assert event.team == team_a
    assert event.changes == {"emails": ["alice.private@example.net"]}

    # Reactivating alice gives the link no second life.
    client.force_login(root)
    client.post(f"/users/{alice.pk}/activate/")
    client.logout()
    assert client.get(_path(backdoor)).status_code == 410

    # What other admins sent is theirs, and still works.
    assert client.get(_path(honest)).status_code == 200
    assert Invitation.objects.get(pk=honest.pk).state == "pending"
