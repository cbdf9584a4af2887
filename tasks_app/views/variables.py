import uuid

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse

from tasks_app.forms.base import form_save
from tasks_app.forms.plans import VariableForm
from tasks_app.identity.actor import actor_for
from tasks_app.models import Role, Variable
from tasks_app.policy.access import teams_for_user, teams_with_role
from tasks_app.policy.loaders import plan_for_user, team_for_user, variable_for_user
from tasks_app.services.plans import variable_delete, variable_save
from tasks_app.views.confirm import confirm_page


def _uuid_or_404(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise Http404("Not found.") from None


def _back(variable: Variable) -> str:
    if variable.plan_id:
        return reverse("plan_detail", args=[variable.plan_id])
    return reverse("variable_list")


def variable_list(request):
    """Global variables of the user's teams; plan variables live on their plan's page."""
    variables = (
        Variable.objects.filter(team__in=teams_for_user(request.user), plan=None)
        .select_related("team")
        .order_by("team__name", "key")
    )
    teams = list(teams_with_role(request.user, Role.EDITOR).order_by("name"))
    context = {
        "variables": variables,
        "teams": teams,
        "editable_teams": {team.id for team in teams},
    }
    return render(request, "variables/list.html", context)


def _variable_form(request, variable: Variable, *, back: str):
    form = VariableForm(
        request.POST or None, instance=variable, team=variable.team, plan=variable.plan
    )
    creating = variable._state.adding
    saved = form_save(
        request,
        form,
        lambda: variable_save(
            variable=form.instance, value=form.new_value(), actor=actor_for(request)
        ),
    )
    if saved is not None:
        verb = "Created" if creating else "Saved"
        messages.success(request, f"{verb} variable {saved.key}.")
        return redirect(back)
    context = {"form": form, "variable": variable, "back": back, "creating": creating}
    return render(request, "variables/form.html", context)


def variable_create(request):
    """A global variable of a team (?team=<id>) or a plan variable (?plan=<id>)."""
    if "plan" in request.GET:
        plan, _ = plan_for_user(request.user, _uuid_or_404(request.GET["plan"]), need=Role.EDITOR)
        variable = Variable(team=plan.team, plan=plan)
    else:
        team_id = _uuid_or_404(request.GET.get("team", ""))
        team, _ = team_for_user(request.user, team_id, need=Role.EDITOR)
        variable = Variable(team=team)
    return _variable_form(request, variable, back=_back(variable))


def variable_edit(request, variable_id):
    variable = variable_for_user(request.user, variable_id, need=Role.EDITOR)
    return _variable_form(request, variable, back=_back(variable))


def variable_delete_view(request, variable_id):
    variable = variable_for_user(request.user, variable_id, need=Role.EDITOR)
    if request.method == "POST":
        back = _back(variable)
        variable_delete(variable=variable, actor=actor_for(request))
        messages.success(request, f"Deleted variable {variable.key}.")
        return redirect(back)
    return confirm_page(
        request, verb="Delete", what=f"variable {variable.key}", cancel=_back(variable)
    )
