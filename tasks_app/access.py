"""Who may see and change what. Views call these through their _get_*_for_user helpers."""

from django.db.models import QuerySet

from tasks_app.models import Membership, Role, Team


def teams_for_user(user) -> QuerySet[Team]:
    """The teams a user can see: all for superusers, else those they belong to."""
    if user.is_superuser:
        return Team.objects.all()
    return Team.objects.filter(memberships__user=user)


def role_in_team(user, team: Team) -> Role | None:
    """The user's role in the team, None for non-members. Superusers are admins everywhere."""
    if user.is_superuser:
        return Role.ADMIN
    role = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    return Role(role) if role else None
