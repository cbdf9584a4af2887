from django.urls import path

from tasks_app.views import accounts, dashboard, health, teams

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("login/", accounts.login_view, name="login"),
    path("logout/", accounts.logout_view, name="logout"),
    path("account/password/", accounts.password_change, name="password_change"),
    path("teams/", teams.team_list, name="team_list"),
    path("teams/new/", teams.team_create_view, name="team_create"),
    path("teams/<uuid:team_id>/", teams.team_detail, name="team_detail"),
    path("teams/<uuid:team_id>/edit/", teams.team_edit, name="team_edit"),
    path("teams/<uuid:team_id>/members/", teams.member_add, name="member_add"),
    path(
        "teams/<uuid:team_id>/members/<uuid:membership_id>/role/",
        teams.member_role,
        name="member_role",
    ),
    path(
        "teams/<uuid:team_id>/members/<uuid:membership_id>/remove/",
        teams.member_remove,
        name="member_remove",
    ),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
