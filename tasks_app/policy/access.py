"""Who may see and change what: team roles, connector access, what a token may read or run.
Pages load their objects through policy/loaders.py, which calls these."""

import enum

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from tasks_app.models import ApiToken, Connector, Membership, Role, TaskConfig, Team
from tasks_app.policy.visibility import NOT_VISIBLE, Viewer, task_visible


def teams_for_user(user) -> QuerySet[Team]:
    """The teams a user can see: all for superusers, else those they belong to."""
    if user.is_superuser:
        return Team.objects.all()
    return Team.objects.filter(memberships__user=user)


def require_superuser(user, reason: str) -> None:
    """Portal administrators only: PermissionDenied with the reason for everyone else."""
    if not user.is_superuser:
        raise PermissionDenied(reason)


def teams_administered_by(user) -> QuerySet[Team]:
    return teams_with_role(user, Role.ADMIN)


def may_read_worker_names(user) -> bool:
    """/readyz is public and names no host; a signed-in portal administrator also reads
    which workers answered."""
    return user.is_authenticated and user.is_superuser


def may_read_audit_log(user) -> bool:
    """Portal administrators read every event, team admins their teams'; nobody else (the
    page says so, and the menu offers it to nobody else)."""
    return user.is_superuser or teams_administered_by(user).exists()


def role_in_team(user, team: Team) -> Role | None:
    """The user's role in the team, None for non-members. Superusers are admins everywhere."""
    if user.is_superuser:
        return Role.ADMIN
    role = Membership.objects.filter(team=team, user=user).values_list("role", flat=True).first()
    return Role(role) if role else None


class ConnectorAccess(enum.IntEnum):
    """What a user may do with a connector; each level includes the ones below."""

    VIEW = 1  # any member of the owner team or of a team it is shared with
    USE = 2  # editors and admins of those teams: test it, pick it for tasks
    MANAGE = 3  # admins of the owner team: edit, share, delete


def connectors_for_user(user) -> QuerySet[Connector]:
    """Connectors owned by, or shared with, a team of the user."""
    if user.is_superuser:
        return Connector.objects.all()
    mine = Q(team__memberships__user=user) | Q(shared_with__memberships__user=user)
    return Connector.objects.filter(id__in=Connector.objects.filter(mine).values("id"))


def team_roles(user) -> dict:
    """{team id: Role} of the user's memberships, for deciding about many objects at once."""
    return {
        team_id: Role(role)
        for team_id, role in Membership.objects.filter(user=user).values_list("team_id", "role")
    }


def connector_access(user, connector: Connector, *, roles=None) -> ConnectorAccess | None:
    """What the user may do with the connector; None: nothing (not even know it exists).

    `roles` (team_roles(user)) saves the query per connector when deciding about a list
    whose shared_with is prefetched.
    """
    if user.is_superuser:
        return ConnectorAccess.MANAGE
    if roles is None:
        memberships = Membership.objects.filter(user=user).filter(
            Q(team_id=connector.team_id) | Q(team__shared_connectors=connector)
        )
        relevant = {
            team_id: Role(role) for team_id, role in memberships.values_list("team_id", "role")
        }
    else:
        teams = {connector.team_id, *(team.pk for team in connector.shared_with.all())}
        relevant = {team_id: role for team_id, role in roles.items() if team_id in teams}
    best = None
    for team_id, role in relevant.items():
        if team_id == connector.team_id and role == Role.ADMIN:
            return ConnectorAccess.MANAGE
        level = ConnectorAccess.USE if role.allows(Role.EDITOR) else ConnectorAccess.VIEW
        best = max(best or level, level)
    return best


# Settings that identify the connector's AWS principal: only those who manage the
# connector (admins of its owner team) read them, on its page and through the API.
CONNECTOR_OWNER_FIELDS = ("access_key_id", "external_id")


def connector_owner_fields_visible(access: ConnectorAccess | None) -> bool:
    return access is not None and access >= ConnectorAccess.MANAGE


def teams_using_connector(user, connector: Connector) -> QuerySet[Team]:
    """The teams through which the user may use the connector (USE access): the owner team
    and the teams it is shared with, where the user is an editor or admin. Superusers act
    for all of them."""
    teams = Team.objects.filter(Q(pk=connector.team_id) | Q(shared_connectors=connector))
    if user.is_superuser:
        return teams.distinct()
    editors = [r for r in Role if r.allows(Role.EDITOR)]
    return teams.filter(memberships__user=user, memberships__role__in=editors).distinct()


def require_team_role(user, team: Team, need: Role = Role.VIEWER) -> Role:
    """The user's role in the team. Non-members: 404 (as if nothing existed); too low: 403."""
    role = role_in_team(user, team)
    if role is None:
        raise Http404("Not found.")
    if not role.allows(need):
        raise PermissionDenied(f"This needs the {Role(need).label} role in {team.name}.")
    return role


def teams_with_role(user, need: Role) -> QuerySet[Team]:
    """Teams in which the user has at least the given role."""
    if user.is_superuser:
        return Team.objects.all()
    roles = [r for r in Role if r.allows(need)]
    return Team.objects.filter(memberships__user=user, memberships__role__in=roles)


# --- what an API token may see and do (SPEC §8.4) ------------------------------------------


def require_task_access(actor, task: TaskConfig) -> None:
    """A token sees what its binding sees (policy/visibility.py); people need to be editors
    of the task's team (credentials are served in clear). Anything else: 404."""
    if actor.token is None:
        require_team_role(actor.user, task.job.plan.team, Role.EDITOR)
        return
    viewer = Viewer.of_token(actor.token)
    if not task_visible(viewer, plan_id=task.job.plan_id, job_id=task.job_id, scope=task.scope):
        raise Http404(NOT_VISIBLE)


def require_token_may_run(token: ApiToken | None, task: TaskConfig) -> None:
    """Tokens read what their job or plan may see, but run only the tasks of their own job:
    a job may refresh its own credentials, not trigger another job's AWS calls."""
    if token is None:
        return
    if token.job_id is None:
        raise PermissionDenied(
            "A plan token reads variables; it runs no task. Use a job token of the task's job."
        )
    if token.job_id != task.job_id:
        raise PermissionDenied(
            f"This token runs only the tasks of its own job; this task belongs to job "
            f"{task.job.plan.key}-{task.job.key}."
        )
