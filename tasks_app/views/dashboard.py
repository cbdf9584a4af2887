from django.db.models import Count
from django.shortcuts import render

from tasks_app.access import teams_for_user
from tasks_app.models import TaskConfig


def dashboard(request):
    teams = teams_for_user(request.user).annotate(member_count=Count("memberships"))
    tasks = (
        TaskConfig.objects.filter(job__plan__team__in=teams_for_user(request.user))
        .select_related("job__plan", "connector")
        .order_by("expires_at", "job__plan__key", "job__key", "position")
    )
    return render(request, "dashboard.html", {"teams": teams, "tasks": tasks})
