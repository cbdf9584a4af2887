"""Objects loaded for a user, with the access decision that goes with each (policy/access.py).

Each loader returns the object (and the user's role or access) or raises what the caller
answers: Http404 when the user may not know the object exists, PermissionDenied when they may
see it but not do this. Views call them; so every page of an object decides alike.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404

from tasks_app.models import ApiToken, Connector, Job, Plan, Role, TaskConfig, Team, Variable
from tasks_app.policy.access import ConnectorAccess, connector_access, require_team_role


def team_for_user(user, team_id, *, need: Role = Role.VIEWER) -> tuple[Team, Role]:
    """The team and the user's role in it. Non-members get 404, as if it did not exist."""
    team = get_object_or_404(Team, id=team_id)
    return team, require_team_role(user, team, need)


def plan_for_user(user, plan_id, *, need: Role = Role.VIEWER) -> tuple[Plan, Role]:
    plan = get_object_or_404(Plan.objects.select_related("team"), id=plan_id)
    return plan, require_team_role(user, plan.team, need)


def job_for_user(user, job_id, *, need: Role = Role.VIEWER) -> tuple[Job, Role]:
    job = get_object_or_404(Job.objects.select_related("plan__team"), id=job_id)
    return job, require_team_role(user, job.plan.team, need)


def task_for_user(user, task_id, *, need: Role = Role.VIEWER) -> tuple[TaskConfig, Role]:
    task = get_object_or_404(
        TaskConfig.objects.select_related("job__plan__team", "connector__team", "credential"),
        id=task_id,
    )
    return task, require_team_role(user, task.job.plan.team, need)


def variable_for_user(user, variable_id, *, need: Role = Role.VIEWER) -> Variable:
    variable = get_object_or_404(Variable.objects.select_related("team", "plan"), id=variable_id)
    require_team_role(user, variable.team, need)
    return variable


def token_for_user(user, token_id, *, need: Role = Role.EDITOR) -> ApiToken:
    token = get_object_or_404(ApiToken.objects.select_related("team", "plan", "job"), id=token_id)
    require_team_role(user, token.team, need)
    return token


def connector_for_user(
    user, connector_id, *, need: ConnectorAccess = ConnectorAccess.VIEW
) -> tuple[Connector, ConnectorAccess]:
    """The connector and what the user may do with it. No access at all: 404."""
    connector = get_object_or_404(Connector.objects.select_related("team"), id=connector_id)
    access = connector_access(user, connector)
    if access is None:
        raise Http404("No such connector.")
    if access < need:
        raise PermissionDenied(
            "Only admins of the owner team may change this connector."
            if need == ConnectorAccess.MANAGE
            else "Only editors and admins may use this connector."
        )
    return connector, access
