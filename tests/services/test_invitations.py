import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.models import AuditEvent, Invitation, Membership, Role
from tasks_app.services.people import (
    InvitationInvalid,
    invitation_create,
    invitation_for_code,
    invitation_link,
)
from tests.factories import make_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a long enough passphrase 42"


def _invite(client, team, email="newbie@example.com", role="editor"):
    return client.post(
        f"/teams/{team.id}/invitations/", {"invite-email": email, "invite-role": role}
    )


def _path(invitation) -> str:
    return re.sub(r"^https?://[^/]+", "", invitation_link(invitation))


def test_a_team_admin_invites_by_email_and_sees_the_link_to_copy(client, alice, team_a):
    client.force_login(alice)
    response = _invite(client, team_a)
    assert response.status_code == 302

    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "newbie@example.com",
        "editor",
        alice,
    )
    assert invitation.expires_at - now() > timedelta(days=6, hours=23)
    page = client.get(f"/teams/{team_a.id}/").content.decode()
    assert invitation_link(invitation) in page
    assert "Pending invitations" in page
    event = AuditEvent.objects.get(action="invitation.created")
    assert event.team == team_a
    assert event.changes["role"] == "editor"
    assert invitation_link(invitation) not in str(event.changes) + event.summary


def test_only_team_admins_invite_and_withdraw(client, alice, team_a, team_b):
    client.force_login(team_b.members.get(username="bea"))  # a viewer of team B
    assert _invite(client, team_b).status_code == 403
    assert _invite(client, team_a).status_code == 404  # not a member
    assert Invitation.objects.count() == 0

    invitation = invitation_create(
        team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=alice)
    )
    assert (
        client.post(f"/teams/{team_a.id}/invitations/{invitation.id}/revoke/").status_code == 404
    )
    # Another team's admin cannot reach it through their own team either.
    client.force_login(team_b.members.get(username="bob"))
    response = client.post(f"/teams/{team_b.id}/invitations/{invitation.id}/revoke/")
    assert response.status_code == 404
    invitation.refresh_from_db()
    assert invitation.state == "pending"


def test_it_refuses_a_bad_address_or_a_member_address_on_the_form(client, alice, team_a):
    client.force_login(alice)
    response = _invite(client, team_a, email="not an address")
    assert response.status_code == 400
    assert "Enter a valid email address." in response.context["invite_form"].errors["email"]

    response = _invite(client, team_a, email="ALICE@example.com")
    assert response.status_code == 400
    assert "already belongs to a member" in response.context["invite_form"].errors["email"][0]
    assert Invitation.objects.count() == 0


def test_the_invited_person_chooses_a_password_and_lands_in_the_team(client, alice, team_a):
    invitation = invitation_create(
        team=team_a, email="newbie@example.com", role=Role.EDITOR, actor=Actor(user=alice)
    )
    page = client.get(_path(invitation))
    assert page.status_code == 200
    assert "Join Team A" in page.content.decode()

    response = client.post(
        _path(invitation),
        {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert response["Location"] == f"/teams/{team_a.id}/"
    membership = Membership.objects.get(team=team_a, user__username="newbie")
    assert membership.role == Role.EDITOR
    assert membership.user.email == "newbie@example.com"
    assert membership.user.check_password(NEW_PASSWORD)
    # Signed in at once.
    assert client.get("/").status_code == 200
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"user.created", "invitation.accepted"} <= actions


def test_the_link_works_once(client, alice, team_a):
    invitation = invitation_create(
        team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=alice)
    )
    form = {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    client.post(_path(invitation), form)
    client.logout()

    again = client.post(_path(invitation), {**form, "username": "second"})
    assert again.status_code == 410
    assert "used already" in again.content.decode()
    assert not Membership.objects.filter(user__username="second").exists()


def test_it_refuses_a_weak_password_and_keeps_the_invitation(client, alice, team_a):
    invitation = invitation_create(
        team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=alice)
    )
    response = client.post(
        _path(invitation), {"username": "newbie", "password1": "123", "password2": "123"}
    )
    assert response.status_code == 400
    errors = response.context["form"].errors["password1"]
    assert any("too short" in e for e in errors)
    mismatch = client.post(
        _path(invitation),
        {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
    )
    assert "The two passwords differ." in mismatch.context["form"].errors["password2"]
    invitation.refresh_from_db()
    assert invitation.state == "pending"


def test_it_refuses_forged_expired_and_withdrawn_links(client, alice, team_a):
    invitation = invitation_create(
        team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=alice)
    )
    forged = _path(invitation)[:-3] + "abc/"
    assert client.get(forged).status_code == 410
    assert client.get(f"/invitations/{invitation.id}/").status_code == 410

    Invitation.objects.filter(id=invitation.id).update(expires_at=now() - timedelta(seconds=1))
    response = client.get(_path(invitation))
    assert response.status_code == 410
    assert "expired" in response.content.decode()

    Invitation.objects.filter(id=invitation.id).update(expires_at=now() + timedelta(days=1))
    client.force_login(alice)
    client.post(f"/teams/{team_a.id}/invitations/{invitation.id}/revoke/")
    client.logout()
    response = client.get(_path(invitation))
    assert "withdrawn" in response.content.decode()
    with pytest.raises(InvitationInvalid):
        invitation_for_code(_path(invitation).split("/")[2])


def test_inviting_again_replaces_the_earlier_link(alice, team_a):
    first = invitation_create(
        team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=alice)
    )
    second = invitation_create(
        team=team_a, email="NEWBIE@example.com", role=Role.ADMIN, actor=Actor(user=alice)
    )
    first.refresh_from_db()
    assert first.state == "revoked"
    assert second.state == "pending"


def test_someone_with_an_account_signs_in_and_accepts(client, alice, team_a):
    erin = make_user("erin")
    invitation = invitation_create(
        team=team_a, email="erin@example.com", role=Role.VIEWER, actor=Actor(user=alice)
    )
    page = client.get(_path(invitation)).content.decode()
    assert "An account with this e-mail address exists already" in page

    client.force_login(erin)
    assert "You are signed in as erin" in client.get(_path(invitation)).content.decode()
    response = client.post(_path(invitation))
    assert response["Location"] == f"/teams/{team_a.id}/"
    assert Membership.objects.get(team=team_a, user=erin).role == Role.VIEWER
    assert Invitation.objects.get().accepted_by == erin


def test_the_link_is_emailed_by_a_worker_when_email_is_configured(
    alice, team_a, settings, django_capture_on_commit_callbacks
):
    settings.EMAIL_ENABLED = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from ecrportal.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            invitation = invitation_create(
                team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=alice)
            )
    finally:
        app.conf.task_always_eager = False
    (message,) = mail.outbox
    assert message.to == ["newbie@example.com"]
    assert invitation_link(invitation) in message.body
    assert "Team A" in message.subject


def test_no_email_is_queued_without_email(alice, team_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        invitation_create(
            team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=alice)
        )
    assert callbacks == []


def test_with_passwords_off_the_invitation_is_accepted_through_single_sign_on(
    client, alice, team_a, settings
):
    settings.OIDC_ENABLED = True
    settings.OIDC_NAME = "Corp SSO"
    settings.LOCAL_PASSWORDS = False
    invitation = invitation_create(
        team=team_a, email="newbie@example.com", role=Role.VIEWER, actor=Actor(user=alice)
    )
    page = client.get(_path(invitation)).content.decode()
    assert "Sign in with Corp SSO to accept" in page
    assert "Create your account" not in page
    response = client.post(
        _path(invitation),
        {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert "single sign-on only" in response.content.decode()
    assert not Membership.objects.filter(user__username="newbie").exists()
