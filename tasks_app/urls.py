from django.urls import path

from tasks_app.views import accounts, connectors, dashboard, health, teams

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
    path("connectors/", connectors.connector_list, name="connector_list"),
    path("connectors/new/", connectors.connector_create, name="connector_create"),
    path("connectors/<uuid:connector_id>/", connectors.connector_detail, name="connector_detail"),
    path("connectors/<uuid:connector_id>/edit/", connectors.connector_edit, name="connector_edit"),
    path(
        "connectors/<uuid:connector_id>/test/",
        connectors.connector_test_view,
        name="connector_test",
    ),
    path(
        "connectors/<uuid:connector_id>/delete/",
        connectors.connector_delete_view,
        name="connector_delete",
    ),
    path("help/ecr-policy/", connectors.ecr_policy, name="ecr_policy"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
