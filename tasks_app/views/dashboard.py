from django.db.models import Count
from django.shortcuts import render

from tasks_app.access import teams_for_user


def dashboard(request):
    teams = teams_for_user(request.user).annotate(member_count=Count("memberships"))
    return render(request, "dashboard.html", {"teams": teams})
