"""Single sign-on: the portal account an identity provider's claims stand for (issue 15).

The provider proves who someone is; these rules decide whether they may in, which account
is theirs (linked by issuer and subject at the first sign-on), and which teams the
provider's claims make them a member of. Every decision is audited.
"""

import hashlib
import logging
import re

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.timezone import now

from tasks_app.identity.actor import Actor
from tasks_app.models import ExternalIdentity, Membership, Profile, Role, Team
from tasks_app.services.audit import audit_record

logger = logging.getLogger("ecrportal.sso")

_USERNAME_CHARACTERS = re.compile(r"[^\w.@+-]")


class SsoRefused(Exception):
    """The provider signed someone in whom the portal refuses; the message is for them."""


def provider_claims(id_token: dict, userinfo: object) -> dict:
    """The claims a sign-on stands on: the ID token's, completed by the userinfo answer only
    when that names the same subject (OpenID Connect Core §5.3.2, else it is ignored
    whole). The ID token's claims win, and an email_verified claim vouches only for the
    address of the answer it came in."""
    subject = id_token.get("sub")
    if not isinstance(userinfo, dict) or not userinfo.get("sub"):
        problem = "names no subject"
    elif not subject or userinfo["sub"] != subject:
        problem = "names another subject than the ID token"
    else:
        claims = {**userinfo, **id_token}
        claims.pop("email_verified", None)
        address = _address(claims).lower()
        for answer in (id_token, userinfo):
            if "email_verified" in answer and _address(answer).lower() == address:
                claims["email_verified"] = answer["email_verified"]
                break
        return claims
    logger.warning(
        "The identity provider's userinfo answer %s; it is ignored and the ID token's "
        "claims alone are used.",
        problem,
    )
    return dict(id_token)


def _address(claims: dict) -> str:
    email = claims.get("email")
    return email.strip() if isinstance(email, str) else ""


def _email(claims: dict) -> tuple[str, bool]:
    """The e-mail address the claims name, and whether the provider vouches for it.

    Only an email_verified claim of JSON true, or the string "true" in any letter case
    (some providers send their claims as strings), makes an address verified; anything else
    ("false", "0", 0, 1, "yes", null, a list, no claim at all) leaves it unverified. An
    unverified address never finds an existing account, never passes
    ECRPORTAL_OIDC_ALLOWED_DOMAINS and is not stored on a new account: whoever can register
    an address at the provider without proving it owns it must not become its owner here.
    """
    email = _address(claims)
    verified = claims.get("email_verified")
    vouched = verified is True or (isinstance(verified, str) and verified.lower() == "true")
    return email, bool(email) and vouched


def _check_domain(email: str, verified: bool) -> None:
    allowed = settings.OIDC_ALLOWED_DOMAINS
    if not allowed:
        return
    domain = email.rpartition("@")[2].lower()
    if email and verified and domain in allowed:
        return
    if not email:
        why = "the provider sent none."
    elif not verified:
        why = f"the provider does not say that yours ({email}) is verified."
    else:
        why = f"yours is {email}."
    raise SsoRefused(
        "Single sign-on is open to verified e-mail addresses in " + ", ".join(allowed) + "; " + why
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
    """The account with this verified e-mail address, else a new one (without the address
    unless it is verified: it is nobody's to claim otherwise); linked to the subject."""
    User = get_user_model()
    email, verified = _email(claims)
    user = None
    if verified:
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
                if verified or not email
                else f"The identity provider does not say that your e-mail address {email} "
                "is verified, so it is not matched to a portal account; verify it at the "
                "provider, or ask a portal administrator or a team admin to invite you."
            )
        user = User(username=_username(claims, subject), email=email if verified else "")
        user.set_unusable_password()  # single sign-on only, until someone sets one
        user.save()
        Profile.objects.create(user=user)
    try:
        with transaction.atomic():
            ExternalIdentity.objects.create(user=user, issuer=issuer, subject=subject)
    except IntegrityError:  # a parallel first sign-on of the same person won
        if created:  # not kept: a second account with the winner's address
            user.delete()
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
        changes={
            "issuer": issuer,
            "subject": subject,
            "email": email,
            "email_verified": verified,
        },
    )
    return user


def _last_admin(team: Team, membership: Membership) -> bool:
    """Whether this admin membership is the team's only one (the admins' rows locked, so
    that two sign-ons cannot each leave the other as the last)."""
    admins = Membership.objects.select_for_update().filter(team=team, role=Role.ADMIN)
    return list(admins.values_list("pk", flat=True)) == [membership.pk]


def _sync_teams(user, claims: dict, actor: Actor) -> None:
    """Memberships of the mapped teams follow the claim: added, re-roled, or removed when
    the claim no longer grants them; a team's last admin is neither removed nor made less
    than admin (and nothing is audited for it)."""
    mapping = settings.OIDC_TEAM_MAP
    if not mapping:
        return
    values = claims.get(settings.OIDC_TEAM_CLAIM) or []
    values = [values] if isinstance(values, str) else values
    values = [str(v) for v in values] if isinstance(values, list) else []
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
        elif membership is None or membership.role == role:
            continue
        elif membership.role == Role.ADMIN and _last_admin(team, membership):
            continue  # neither removed nor made less than admin
        elif role is not None:
            Membership.objects.filter(pk=membership.pk).update(role=role)
            summary = f"Made {user.get_username()} {role.label} of {team.name}"
        else:
            membership.delete()
            summary = f"Removed {user.get_username()} from {team.name}"
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
    _check_domain(*_email(claims))
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
