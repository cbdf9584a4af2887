"""Single sign-on: the portal account an identity provider's claims stand for (issue 15).

The provider proves who someone is; these rules decide whether they may in, which account
is theirs (linked by issuer and subject at the first sign-on), and which teams the
provider's claims make them a member of. Every decision is audited.
"""

import hashlib
import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.timezone import now

from tasks_app.actor import Actor
from tasks_app.models import ExternalIdentity, Membership, Profile, Role, Team
from tasks_app.services.audit import audit_record

_USERNAME_CHARACTERS = re.compile(r"[^\w.@+-]")


class SsoRefused(Exception):
    """The provider signed someone in whom the portal refuses; the message is for them."""


def _email(claims: dict) -> tuple[str, bool]:
    """The e-mail address and whether it may identify someone: unless the provider says
    it is not verified (many send no email_verified claim at all)."""
    email = str(claims.get("email") or "").strip()
    return email, bool(email) and claims.get("email_verified") is not False


def _check_domain(email: str, usable: bool) -> None:
    allowed = settings.OIDC_ALLOWED_DOMAINS
    if not allowed:
        return
    domain = email.rpartition("@")[2].lower()
    if not usable or domain not in allowed:
        raise SsoRefused(
            "Single sign-on is open to verified e-mail addresses in "
            + ", ".join(allowed)
            + (f"; yours is {email}." if email else "; the provider sent none.")
        )


def _username(claims: dict, subject: str) -> str:
    User = get_user_model()
    email = str(claims.get("email") or "")
    for candidate in (claims.get("preferred_username"), email.partition("@")[0]):
        base = _USERNAME_CHARACTERS.sub("", str(candidate or ""))[:140]
        if base:
            break
    else:
        base = "sso-" + hashlib.sha256(subject.encode()).hexdigest()[:12]
    name, n = base, 1
    while User.objects.filter(username__iexact=name).exists():
        n += 1
        name = f"{base}-{n}"
    return name


def _account(issuer: str, subject: str, claims: dict, actor: Actor):
    """The linked account, else one found by verified e-mail, else a new one."""
    User = get_user_model()
    email, usable = _email(claims)
    user = None
    if usable:
        matches = list(User.objects.filter(email__iexact=email)[:2])
        if len(matches) > 1:
            raise SsoRefused(
                f"Several portal accounts use {email}; a portal administrator must give "
                "them distinct addresses first."
            )
        user = matches[0] if matches else None
    created = user is None
    if user is None:
        if not settings.OIDC_CREATE_USERS:
            raise SsoRefused(
                "You have no account on this portal yet; ask a portal administrator or a "
                "team admin to invite you."
            )
        user = User(username=_username(claims, subject), email=email if usable else "")
        user.set_unusable_password()  # single sign-on only, until someone sets one
        user.save()
        Profile.objects.create(user=user)
    try:
        with transaction.atomic():
            ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    except IntegrityError:  # a parallel first sign-on of the same person won
        return (
            ExternalIdentity.objects.select_related("user")
            .get(issuer=issuer, subject=subject)
            .user
        )
    audit_record(
        action="sso.account_created" if created else "sso.account_linked",
        summary=(
            f"Created the account {user.get_username()} at its first single sign-on"
            if created
            else f"Linked single sign-on to the account {user.get_username()} by e-mail"
        ),
        actor=Actor(user=user, address=actor.address),
        obj=user,
        changes={"issuer": issuer, "subject": subject, "email": email},
    )
    return user


def _sync_teams(user, claims: dict, actor: Actor) -> None:
    """Memberships of the mapped teams follow the claim: added, re-roled, or removed when
    the claim no longer grants them (never the team's last admin)."""
    mapping = settings.OIDC_TEAM_MAP
    if not mapping:
        return
    values = claims.get(settings.OIDC_TEAM_CLAIM) or []
    values = [values] if isinstance(values, str) else [str(v) for v in values]
    wanted: dict[str, Role] = {}
    for value in values:
        for slug, name in mapping.get(value, []):
            if slug not in wanted or Role(name).allows(wanted[slug]):
                wanted[slug] = Role(name)
    mapped = {slug for targets in mapping.values() for slug, _ in targets}
    teams = {t.slug: t for t in Team.objects.filter(slug__in=mapped)}
    current = {m.team.slug: m for m in user.memberships.select_related("team")}
    who = Actor(user=user, address=actor.address)
    for slug, team in teams.items():
        membership, role = current.get(slug), wanted.get(slug)
        if role is not None and membership is None:
            Membership.objects.create(team=team, user=user, role=role)
            summary = f"Added {user.get_username()} to {team.name} as {role.label}"
        elif role is not None and membership is not None and membership.role != role:
            Membership.objects.filter(pk=membership.pk).update(role=role)
            summary = f"Made {user.get_username()} {role.label} of {team.name}"
        elif role is None and membership is not None:
            admins = team.memberships.filter(role=Role.ADMIN).exclude(pk=membership.pk)
            if membership.role == Role.ADMIN and not admins.exists():
                continue  # the last admin stays
            membership.delete()
            summary = f"Removed {user.get_username()} from {team.name}"
        else:
            continue
        audit_record(
            action="sso.membership_synced",
            summary=f"{summary} by the provider's {settings.OIDC_TEAM_CLAIM} claim",
            actor=who,
            team=team,
            changes={"role": role.value if role else None},
        )


@transaction.atomic
def sso_sign_in(*, issuer: str, claims: dict, actor: Actor):
    """The active account these verified claims stand for, its teams brought in line with
    the claims; or SsoRefused saying why not."""
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SsoRefused("The identity provider sent no subject (sub claim).")
    email, usable = _email(claims)
    _check_domain(email, usable)
    identity = (
        ExternalIdentity.objects.select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    user = identity.user if identity else _account(issuer, subject, claims, actor)
    if not user.is_active:
        raise SsoRefused(
            "Your portal account is deactivated; a portal administrator can reactivate it."
        )
    ExternalIdentity.objects.filter(issuer=issuer, subject=subject).update(last_login=now())
    _sync_teams(user, claims, actor)
    return user
