from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timezone import now
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_POST

from tasks_app.formats.timeline import timeline
from tasks_app.identity.actor import actor_for
from tasks_app.models import Plan, Role, Status
from tasks_app.policy.access import teams_for_user, teams_with_role
from tasks_app.selectors import (
    URGENCY,
    dashboard_rows,
    dashboard_tasks,
    refreshable_tasks,
    teams_with_member_count,
)
from tasks_app.services.audit import audit_record
from tasks_app.services.refresh import refresh_request
from tasks_app.views.history import choice_param, query_without_page, team_options

# The dashboard lists the tasks a page at a time, the most urgent first (selectors.URGENCY,
# then the soonest expiry); filters narrow it. Each row draws its own timeline strip.
PER_PAGE = 25
# Beyond this many plans the plan filter is a field for the key, not a list to scroll.
PLAN_CHOICES = 100
STATUSES = [Status.OK, Status.FAILING, Status.EXPIRED, Status.NEVER_RUN, Status.DISABLED]


# Compressed: the page carries no secret but the CSRF token, which Django masks anew in
# every response (docs/security.md, "Compressed responses").
@gzip_page
def dashboard(request):
    at = now()
    teams = list(teams_with_member_count(teams_for_user(request.user)))
    chosen = {
        "team": choice_param(request, "team", {str(t.id) for t in teams}),
        "plan": request.GET.get("plan", ""),
        "status": choice_param(request, "status", STATUSES),
    }
    team_ids = [t.id for t in teams]
    plans = Plan.objects.filter(team__in=team_ids).order_by("key").values_list("key", "name")
    if chosen["team"]:
        plans = plans.filter(team_id=chosen["team"])
    plan_options = [(key, f"{key} {name}") for key, name in plans[: PLAN_CHOICES + 1]]
    ids = dashboard_tasks(team_ids=team_ids, at=at, **chosen).values_list("id", flat=True)
    page = Paginator(ids, PER_PAGE).get_page(request.GET.get("page"))
    shown = dashboard_rows(list(page.object_list))
    drawn = timeline(shown, at=at) if shown else None
    for task in shown:
        # The scheduler's state of each row: running and queued rows are polled until they
        # settle (tasks_app/static/tasks_app/live.js).
        task.scheduler = task.refresh_state(at)
    editable = {t.id for t in teams_with_role(request.user, Role.EDITOR)}
    due_count = (  # not being refreshed already
        refreshable_tasks(team_ids=editable, at=at).exclude(lease_until__gt=at).count()
    )
    context = {
        "teams": teams,
        "team_options": team_options(teams),
        "plan_options": None if len(plan_options) > PLAN_CHOICES else plan_options,
        "status_options": [(status, status) for status in STATUSES],
        "chosen": chosen,
        "filtered": any(chosen.values()),
        "tasks": shown,
        # Each row with its timeline strip: the timeline draws exactly the rows listed.
        "rows": list(zip(shown, drawn["rows"], strict=True)) if drawn else [],
        "page": page,
        "urgency": URGENCY,
        "query": query_without_page(request),
        "busy": [t.id for t in shown if t.scheduler in ("running", "queued")],
        "at": at,
        "timeline": drawn,
        "can_refresh": bool(editable),
        "due_count": due_count,
    }
    return render(request, "dashboard.html", context)


@require_POST
def refresh_due(request):
    """Queue every due, failing, expired or never-run task the user may edit."""
    at = now()
    editable = teams_with_role(request.user, Role.EDITOR)
    asked, queued, groups = refresh_request(
        tasks=refreshable_tasks(team_ids=editable, at=at), at=at
    )
    if queued:
        audit_record(
            action="tasks.refresh_requested",
            summary=f"Asked for the refresh of {asked} due tasks",
            actor=actor_for(request),
            changes={"tasks": queued, "groups": groups},
        )
        messages.success(
            request,
            f"Queued {queued} task{'s' if queued != 1 else ''} in {groups} AWS "
            f"call{'s' if groups != 1 else ''}; the workers refresh them now.",
        )
    elif asked:
        messages.info(
            request,
            f"The workers are busy with as many AWS calls as the fleet's rate allows; "
            f"{asked} task{'s are' if asked != 1 else ' is'} due now and the next "
            "refresh ticks take them.",
        )
    else:
        messages.info(request, "Nothing is due: every task you may edit has a valid token.")
    back = request.POST.get("next", "")
    if back.startswith("/") and url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}
    ):
        return redirect(back)
    return redirect("dashboard")
