"""Run history and the audit log: long lists with filters, read a page at a time."""

from datetime import datetime, time, timedelta

from django.core.paginator import Paginator
from django.db.models import Q
from django.shortcuts import render
from django.utils.timezone import get_current_timezone

from tasks_app.models import AuditEvent, TaskRun
from tasks_app.policy.access import may_read_audit_log, teams_administered_by, teams_for_user

PER_PAGE = 50


def choice_param(request, name: str, allowed) -> str:
    """A filter from the query string; a value not offered is ignored (an empty filter)."""
    value = request.GET.get(name, "")
    return value if value in allowed else ""


def _date(request, name: str):
    """A YYYY-MM-DD filter; a malformed one is reported, not ignored silently."""
    value = request.GET.get(name, "").strip()
    if not value:
        return value, None, ""
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return value, None, f"{name.title()}: enter a date as YYYY-MM-DD, e.g. 2026-11-28."
    return value, datetime.combine(day, time.min, tzinfo=get_current_timezone()), ""


def team_options(teams) -> list[tuple[str, str]]:
    return [(str(team.id), team.name) for team in teams]


def _page(request, queryset):
    return Paginator(queryset, PER_PAGE).get_page(request.GET.get("page"))


def query_without_page(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    return query.urlencode()


def run_list(request):
    teams = list(teams_for_user(request.user))
    team_ids = {str(t.id) for t in teams}
    chosen = {
        "team": choice_param(request, "team", team_ids),
        "outcome": choice_param(request, "outcome", TaskRun.Outcome.values),
        "trigger": choice_param(request, "trigger", TaskRun.Trigger.values),
    }
    runs = TaskRun.objects.filter(task__job__plan__team__in=[t.id for t in teams])
    if chosen["team"]:
        runs = runs.filter(task__job__plan__team_id=chosen["team"])
    if chosen["outcome"]:
        runs = runs.filter(outcome=chosen["outcome"])
    if chosen["trigger"]:
        runs = runs.filter(trigger=chosen["trigger"])
    runs = runs.select_related("task__job__plan__team", "actor", "connector").order_by("-started")
    context = {
        "page": _page(request, runs),
        "team_options": team_options(teams),
        "chosen": chosen,
        "filtered": any(chosen.values()),
        "outcomes": TaskRun.Outcome.choices,
        "triggers": TaskRun.Trigger.choices,
        "query": query_without_page(request),
    }
    return render(request, "history/runs.html", context)


def audit_log(request):
    """Team admins read their teams' events; portal administrators read every event."""
    teams = list(teams_administered_by(request.user))
    team_ids = {str(t.id) for t in teams}
    if request.user.is_superuser:
        events = AuditEvent.objects.all()
    else:
        events = AuditEvent.objects.filter(team__in=[t.id for t in teams])
    actions = list(events.order_by("action").values_list("action", flat=True).distinct())
    chosen = {
        "team": choice_param(request, "team", team_ids),
        "action": choice_param(request, "action", actions),
        "actor": request.GET.get("actor", "").strip()[:150],
    }
    chosen["since"], since, since_error = _date(request, "since")
    chosen["until"], until, until_error = _date(request, "until")
    errors = [e for e in (since_error, until_error) if e]
    if chosen["team"]:
        events = events.filter(team_id=chosen["team"])
    if chosen["action"]:
        events = events.filter(action=chosen["action"])
    if chosen["actor"]:
        events = events.filter(
            Q(actor_name__icontains=chosen["actor"])
            | Q(actor__username__icontains=chosen["actor"])
        )
    if since:
        events = events.filter(created__gte=since)
    if until:
        events = events.filter(created__lt=until + timedelta(days=1))
    events = events.select_related("team", "actor").order_by("-created")
    context = {
        "page": _page(request, events),
        "team_options": team_options(teams),
        "action_options": [(action, action) for action in actions],
        "team_empty": "All events" if request.user.is_superuser else "All your teams",
        "chosen": chosen,
        "errors": errors,
        "filtered": any(chosen.values()),
        "query": query_without_page(request),
        "may_read": may_read_audit_log(request.user),
    }
    return render(request, "history/audit.html", context, status=400 if errors else 200)
