"""Teams and memberships. Every change is audited."""

from django.db import IntegrityError, transaction

from tasks_app.identity.actor import Actor
from tasks_app.models import Membership, Role, Team
from tasks_app.services.audit import audit_changes, audit_record, audit_snapshot


class TeamError(Exception):
    """A change that would break a team rule; the message is meant for the user."""


@transaction.atomic
def team_create(*, name: str, slug: str, actor: Actor) -> Team:
    if actor.user is None:
        raise ValueError("A person creates a team: it needs its first admin.")
    team = Team.objects.create(name=name, slug=slug)
    # Whoever creates a team administers it.
    Membership.objects.create(team=team, user=actor.user, role=Role.ADMIN)
    audit_record(
        action="team.created",
        summary=f"Created team {name}",
        actor=actor,
        team=team,
        obj=team,
        changes={"name": name, "slug": slug},
    )
    return team


@transaction.atomic
def team_update(*, team: Team, name: str, slug: str, actor: Actor) -> Team:
    changes = audit_changes(audit_snapshot(team, ["name", "slug"]), {"name": name, "slug": slug})
    if not changes:
        return team
    team.name, team.slug = name, slug
    team.save(update_fields=["name", "slug"])
    audit_record(
        action="team.updated",
        summary=f"Renamed team to {name}" if "name" in changes else f"Updated team {name}",
        actor=actor,
        team=team,
        obj=team,
        changes=changes,
    )
    return team


def membership_add(*, team: Team, user, role: Role, actor: Actor) -> Membership:
    try:
        with transaction.atomic():
            membership = Membership.objects.create(team=team, user=user, role=role)
            audit_record(
                action="membership.added",
                summary=f"Added {user.get_username()} to {team.name} as {Role(role).label}",
                actor=actor,
                team=team,
                obj=membership,
                changes={"user": user.get_username(), "role": role},
            )
    except IntegrityError:
        raise TeamError(f"{user.get_username()} is already a member of {team.name}.") from None
    return membership


def _lock_admins(team: Team) -> list:
    """Lock the team's admin rows so that two requests cannot both remove the last one."""
    return list(
        Membership.objects.select_for_update()
        .filter(team=team, role=Role.ADMIN)
        .values_list("id", flat=True)
    )


@transaction.atomic
def membership_change_role(*, membership: Membership, role: Role, actor: Actor) -> Membership:
    old = membership.role
    if old == role:
        return membership
    admins = _lock_admins(membership.team)
    if old == Role.ADMIN and admins == [membership.id]:
        raise TeamError(
            f"{membership.user.get_username()} is the last admin of {membership.team.name}. "
            "Make someone else an admin first."
        )
    updated = Membership.objects.filter(id=membership.id, role=old).update(role=role)
    if not updated:
        raise TeamError("This membership changed meanwhile. Reload the page and try again.")
    membership.role = role
    audit_record(
        action="membership.role_changed",
        summary=(
            f"Changed {membership.user.get_username()}'s role in {membership.team.name} "
            f"from {Role(old).label} to {Role(role).label}"
        ),
        actor=actor,
        team=membership.team,
        obj=membership,
        changes={"role": [old, role]},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: Actor) -> None:
    admins = _lock_admins(membership.team)
    if membership.role == Role.ADMIN and admins == [membership.id]:
        raise TeamError(
            f"{membership.user.get_username()} is the last admin of {membership.team.name}. "
            "Make someone else an admin first."
        )
    membership.delete()
    audit_record(
        action="membership.removed",
        summary=f"Removed {membership.user.get_username()} from {membership.team.name}",
        actor=actor,
        team=membership.team,
        changes={"user": membership.user.get_username(), "role": membership.role},
    )


@transaction.atomic
def team_notifications_update(
    *, team: Team, notify_email: bool, webhook_url: str, webhook_secret: str, actor: Actor
) -> Team:
    """Change where the team hears about status changes. The secret is never audited."""
    changes = audit_changes(
        audit_snapshot(team, ["notify_email", "webhook_url"]),
        {"notify_email": notify_email, "webhook_url": webhook_url},
    )
    team.notify_email, team.webhook_url = notify_email, webhook_url
    if not webhook_url:
        if team.webhook_secret:
            changes["webhook_secret"] = "removed"  # noqa: S105 - what happened, not the value
        team.webhook_secret = ""
    elif webhook_secret:
        changes["webhook_secret"] = "changed"  # noqa: S105
        team.webhook_secret = webhook_secret
    if not changes:
        return team
    team.save(update_fields=["notify_email", "webhook_url", "webhook_secret"])
    audit_record(
        action="team.notifications_updated",
        summary=f"Changed the notifications of team {team.name}",
        actor=actor,
        team=team,
        obj=team,
        changes=changes,
    )
    return team
