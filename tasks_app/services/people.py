"""People: invitations to teams, accounts managed by superusers, the host-credentials grant.

Every change is audited. An invitation link is signed with the portal's secret key; the
Invitation row decides whether it still works (single use, expiry, revocation), with
compare-and-set updates so that two clicks cannot both accept it.
"""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model, password_validation
from django.core import signing
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.lib import caches
from tasks_app.lib.celery_queue import INVITATION_SEND, celery_task
from tasks_app.models import ApiToken, Invitation, Membership, Profile, Role, Team
from tasks_app.services.admins import NotAdministrator, administrators_locked, one_time_password
from tasks_app.services.audit import audit_record
from tasks_app.services.workload import trust_rules_disable

_SIGNER_SALT = "ecrportal.invitation"


class PeopleError(Exception):
    """A change that would break a rule about people; the message is meant for the user."""


class InvitationInvalid(PeopleError):
    """The link is not (or no longer) a working invitation."""


def _signer() -> signing.Signer:
    return signing.Signer(salt=_SIGNER_SALT)


def invitation_link(invitation: Invitation) -> str:
    """The absolute link that accepts the invitation (the same link every time)."""
    code = _signer().sign(str(invitation.id))
    return str(settings.SITE_URL).rstrip("/") + reverse("invitation_accept", args=[code])


def invitation_for_code(code: str) -> Invitation:
    """The pending invitation a link's code names, or InvitationInvalid saying why not."""
    try:
        invitation_id = _signer().unsign(code)
        invitation = Invitation.objects.select_related("team", "invited_by").get(id=invitation_id)
    except (signing.BadSignature, Invitation.DoesNotExist, ValueError):
        raise InvitationInvalid(
            "This invitation link is not valid. Ask a team admin for a new one."
        ) from None
    state = invitation.state
    if state != "pending":
        raise InvitationInvalid(
            {
                "accepted": "This invitation has been used already. Sign in instead.",
                "revoked": "This invitation was withdrawn. Ask a team admin for a new one.",
                "expired": "This invitation has expired. Ask a team admin for a new one.",
            }[state]
        )
    return invitation


@transaction.atomic
def invitation_create(*, team: Team, email: str, role: Role, actor: Actor) -> Invitation:
    """Invite an address to the team. An earlier pending invitation of the same address to
    the team is withdrawn: the newest link is the one that works. The e-mail (when e-mail
    is configured) is sent by a worker after the commit."""
    email = email.strip()
    User = get_user_model()
    if Membership.objects.filter(team=team, user__email__iexact=email).exists():
        raise PeopleError(f"{email} already belongs to a member of {team.name}.")
    stamp = now()
    replaced = Invitation.objects.filter(
        team=team, email__iexact=email, accepted_at=None, revoked_at=None, expires_at__gt=stamp
    ).update(revoked_at=stamp)
    invitation = Invitation.objects.create(
        team=team,
        email=email,
        role=role,
        invited_by=actor.user,
        created=stamp,
        expires_at=stamp + timedelta(days=settings.INVITATION_DAYS),
    )
    audit_record(
        action="invitation.created",
        summary=f"Invited {email} to {team.name} as {Role(role).label}",
        actor=actor,
        team=team,
        obj=invitation,
        changes={
            "email": email,
            "role": role,
            "expires_at": invitation.expires_at.isoformat(),
            "replaced": replaced,
            "has_account": User.objects.filter(email__iexact=email).exists(),
        },
    )
    if settings.EMAIL_ENABLED:
        # An ID only: the link is a secret and never crosses the broker.
        send = celery_task(INVITATION_SEND)
        transaction.on_commit(lambda: send.delay(str(invitation.id)))
    return invitation


def invitation_email(*, invitation_id) -> bool:
    """Send the invitation's link by e-mail; False when it no longer works (nothing sent)."""
    from django.core.mail import send_mail

    invitation = (
        Invitation.objects.select_related("team", "invited_by").filter(id=invitation_id).first()
    )
    if invitation is None or invitation.state != "pending":
        return False
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "A team admin"
    body = "\n".join(
        [
            f"{inviter} invited you to the team {invitation.team.name} on ECR Portal, as "
            f"{Role(invitation.role).label.lower()}.",
            "",
            "Open this link to choose a password and join (it works once, until "
            f"{invitation.expires_at:%Y-%m-%d %H:%M} UTC):",
            "",
            invitation_link(invitation),
        ]
    )
    send_mail(
        f"[ECR Portal] Invitation to {invitation.team.name}",
        body,
        settings.DEFAULT_FROM_EMAIL,
        [invitation.email],
        fail_silently=False,
    )
    return True


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: Actor) -> bool:
    """Withdraw a pending invitation; False if it was not pending any more."""
    stamp = now()
    revoked = Invitation.objects.filter(
        id=invitation.id, accepted_at=None, revoked_at=None, expires_at__gt=stamp
    ).update(revoked_at=stamp)
    if revoked:
        invitation.revoked_at = stamp
        audit_record(
            action="invitation.revoked",
            summary=f"Withdrew the invitation of {invitation.email} to {invitation.team.name}",
            actor=actor,
            team=invitation.team,
            obj=invitation,
        )
    return bool(revoked)


def _invitation_take(invitation: Invitation, user) -> None:
    """Mark the invitation used by this person, once (compare-and-set), or raise."""
    stamp = now()
    taken = Invitation.objects.filter(
        id=invitation.id, accepted_at=None, revoked_at=None, expires_at__gt=stamp
    ).update(accepted_at=stamp, accepted_by=user)
    if not taken:
        raise InvitationInvalid("This invitation has been used or withdrawn meanwhile.")
    invitation.accepted_at, invitation.accepted_by = stamp, user


def invitation_addressee_refusal(invitation: Invitation, user) -> str | None:
    """Why this account may not accept the invitation; None when it may. An invitation is
    for its address, not for whoever holds the link: the account's e-mail address (set by
    a portal administrator, or verified by single sign-on) must be the invited one."""
    if (user.email or "").strip().lower() == invitation.email.strip().lower():
        return None
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "a team admin"
    return (
        f"This invitation is for {invitation.email}, and you are signed in as "
        f"{user.get_username()}"
        + (f" ({user.email})" if user.email else ", whose account has no e-mail address")
        + f". Sign in with the invited account, or ask {inviter} to invite your address."
    )


@transaction.atomic
def invitation_accept(*, invitation: Invitation, actor: Actor) -> Membership:
    """The signed-in person joins the team with the invitation's role, if it is theirs."""
    user = actor.user
    if user is None:
        raise PeopleError("Sign in to accept the invitation.")
    refusal = invitation_addressee_refusal(invitation, user)
    if refusal:
        raise PeopleError(refusal)
    _invitation_take(invitation, user)
    try:
        with transaction.atomic():
            membership = Membership.objects.create(
                team=invitation.team, user=user, role=invitation.role
            )
    except IntegrityError:
        raise PeopleError(
            f"You are a member of {invitation.team.name} already; the invitation is unused."
        ) from None
    audit_record(
        action="invitation.accepted",
        summary=(
            f"{user.get_username()} joined {invitation.team.name} as "
            f"{Role(invitation.role).label} by invitation"
        ),
        actor=actor,
        team=invitation.team,
        obj=invitation,
        changes={"email": invitation.email, "role": invitation.role},
    )
    return membership


@transaction.atomic
def invitation_accept_new_account(
    *, invitation: Invitation, username: str, password: str, actor: Actor
) -> Membership:
    """Create the invited person's account with the password they chose (Django's password
    validators) and make them a member. Raises ValidationError for a password the
    validators refuse, PeopleError for a username that is taken or an address that has an
    account already (a second account with it would break that person's sign-on)."""
    if not settings.LOCAL_PASSWORDS:
        raise PeopleError("This portal signs people in with single sign-on only.")
    User = get_user_model()
    if User.objects.filter(email__iexact=invitation.email.strip()).exists():
        raise PeopleError(
            f"An account with {invitation.email} exists already: sign in with it to accept "
            "the invitation."
        )
    user = User(username=username, email=invitation.email)
    password_validation.validate_password(password, user)
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise PeopleError(f"The username {username} is taken. Choose another.") from None
    Profile.objects.create(user=user)
    audit_record(
        action="user.created",
        summary=f"Created the account {username} by invitation to {invitation.team.name}",
        actor=Actor(user=user, address=actor.address),
        team=invitation.team,
        obj=user,
        changes={"username": username, "email": invitation.email, "by": "invitation"},
    )
    return invitation_accept(invitation=invitation, actor=Actor(user=user, address=actor.address))


@dataclass(frozen=True)
class NewPassword:
    user: Any  # the user model
    one_time_password: str  # shown once, to be handed over; changed at the first sign-in


def _require_superuser(actor: Actor):
    """The acting superuser, still active and an administrator now (their row locked with
    the others'), or PeopleError. Called inside each change's transaction."""
    _administrators_locked(actor)
    return actor.user


@transaction.atomic
def user_create(*, username: str, email: str, superuser: bool, actor: Actor) -> NewPassword:
    """A new account with a one-time password it must change at the first sign-in."""
    _require_superuser(actor)
    User = get_user_model()
    otp = one_time_password()
    user = User(username=username, email=email, is_superuser=superuser, is_staff=superuser)
    user.set_password(otp)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise PeopleError(f"The username {username} is taken.") from None
    Profile.objects.create(user=user, must_change_password=True)
    audit_record(
        action="user.created",
        summary=f"Created the account {username}"
        + (" (portal administrator)" if superuser else ""),
        actor=actor,
        obj=user,
        changes={"username": username, "email": email, "superuser": superuser},
    )
    return NewPassword(user=user, one_time_password=otp)


def _administrators_locked(actor: Actor, user=None) -> set:
    """The active administrators' IDs, their rows locked, the actor among them; with
    `user`, also refuse to leave none (two administrators deactivating or demoting each
    other at once)."""
    if actor.user is None or not actor.user.is_superuser:
        raise PeopleError("Only portal administrators manage accounts.")
    try:
        active = administrators_locked(actor)
    except NotAdministrator as e:
        raise PeopleError(str(e)) from None
    if user is not None and user.pk in active and not active - {user.pk}:
        raise PeopleError(f"{user.get_username()} is the last active portal administrator.")
    return active


@dataclass(frozen=True)
class Deactivated:
    tokens: int  # API tokens revoked
    invitations: int  # pending invitations withdrawn
    trust_rules: int  # trust rules disabled


@transaction.atomic
def user_deactivate(*, user, actor: Actor) -> Deactivated:
    """The person can no longer sign in; their sessions end at their next request. What
    acts in their name stops too: the API tokens they created are revoked, their pending
    invitations withdrawn, their trust rules disabled (a portal administrator can enable a
    rule again under their own name, on the Users page)."""
    if actor.user is not None and user.pk == actor.user.pk:
        raise PeopleError("You cannot deactivate your own account.")
    _administrators_locked(actor, user)
    User = get_user_model()
    if not User.objects.filter(pk=user.pk, is_active=True).update(is_active=False):
        return Deactivated(0, 0, 0)
    user.is_active = False
    name = user.get_username()
    stamp = now()
    tokens = list(
        ApiToken.objects.filter(created_by=user, revoked_at=None).values_list("id", "token_hash")
    )
    ApiToken.objects.filter(id__in=[pk for pk, _ in tokens]).update(revoked_at=stamp)
    caches.tokens_forget([digest for _, digest in tokens])
    invitations = _invitations_withdraw(inviter=user, at=stamp, actor=actor)
    rules = trust_rules_disable(
        created_by=user, reason=f"{name}, who made it, was deactivated.", actor=actor
    )
    audit_record(
        action="user.deactivated",
        summary=f"Deactivated the account {name}"
        + (f", revoked {len(tokens)} API token(s)" if tokens else "")
        + (f", withdrew {invitations} invitation(s)" if invitations else "")
        + (f", disabled {rules} trust rule(s)" if rules else ""),
        actor=actor,
        obj=user,
        changes={
            "tokens_revoked": len(tokens),
            "invitations_withdrawn": invitations,
            "trust_rules_disabled": rules,
        },
    )
    return Deactivated(len(tokens), invitations, rules)


def _invitations_withdraw(*, inviter, at, actor: Actor) -> int:
    """Withdraw the pending invitations someone made, audited in each team."""
    pending = Invitation.objects.filter(
        invited_by=inviter, accepted_at=None, revoked_at=None, expires_at__gt=at
    )
    by_team: dict = {}
    for invitation in pending.select_related("team"):
        by_team.setdefault(invitation.team, []).append(invitation.email)
    withdrawn = pending.update(revoked_at=at)
    for team, emails in by_team.items():
        audit_record(
            action="invitation.revoked",
            summary=f"Withdrew {len(emails)} invitation(s) to {team.name} made by "
            f"{inviter.get_username()}, who was deactivated",
            actor=actor,
            team=team,
            changes={"emails": emails},
        )
    return withdrawn


@transaction.atomic
def user_activate(*, user, actor: Actor) -> bool:
    _require_superuser(actor)
    User = get_user_model()
    if not User.objects.filter(pk=user.pk, is_active=False).update(is_active=True):
        return False
    user.is_active = True
    audit_record(
        action="user.activated",
        summary=f"Reactivated the account {user.get_username()} (its API tokens stay revoked)",
        actor=actor,
        obj=user,
    )
    return True


@transaction.atomic
def user_password_reset(*, user, actor: Actor) -> NewPassword:
    """A new one-time password: the old one stops working, every session of the person
    ends (Django ties sessions to the password), the next sign-in forces a change."""
    _require_superuser(actor)
    otp = one_time_password()
    user.set_password(otp)
    user.save(update_fields=["password"])
    Profile.objects.update_or_create(user=user, defaults={"must_change_password": True})
    audit_record(
        action="user.password_reset",
        summary=f"Reset the password of {user.get_username()} to a one-time password",
        actor=actor,
        obj=user,
    )
    return NewPassword(user=user, one_time_password=otp)


@transaction.atomic
def user_superuser_set(*, user, superuser: bool, actor: Actor) -> bool:
    """Grant or withdraw portal administration; False if nothing changed."""
    _administrators_locked(actor, None if superuser else user)
    User = get_user_model()
    user.is_superuser = User.objects.filter(pk=user.pk).values_list("is_superuser", flat=True)[0]
    if user.is_superuser == superuser:
        return False
    User.objects.filter(pk=user.pk).update(is_superuser=superuser, is_staff=superuser)
    user.is_superuser = user.is_staff = superuser
    audit_record(
        action="user.superuser_granted" if superuser else "user.superuser_withdrawn",
        summary=(
            f"Made {user.get_username()} a portal administrator"
            if superuser
            else f"Withdrew portal administration from {user.get_username()}"
        ),
        actor=actor,
        obj=user,
        changes={"superuser": superuser},
    )
    return True


@transaction.atomic
def team_host_credentials_set(*, team: Team, allowed: bool, actor: Actor) -> bool:
    """Grant or withdraw the team's use of the portal host's own AWS identity (SPEC §3);
    False if nothing changed. Withdrawing stops every path at once: runs, refreshes and
    Test connection check the grant of the team that uses the credentials."""
    _require_superuser(actor)
    if not Team.objects.filter(pk=team.pk, host_credentials_allowed=not allowed).update(
        host_credentials_allowed=allowed
    ):
        return False
    team.host_credentials_allowed = allowed
    audit_record(
        action="team.host_credentials_granted" if allowed else "team.host_credentials_withdrawn",
        summary=(
            f"Granted {team.name} the portal host's AWS identity"
            if allowed
            else f"Withdrew the portal host's AWS identity from {team.name}"
        ),
        actor=actor,
        team=team,
        obj=team,
        changes={"host_credentials_allowed": allowed},
    )
    return True
