"""The run history and audit log pages: filters, pages, who reads what."""

import pytest
from django.urls import reverse

from tasks_app.models import AuditEvent, Job, Plan, Role, TaskConfig, TaskRun
from tests.factories import PASSWORD, make_connector, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def teams():
    a = make_team("Team A", alice=Role.ADMIN, vic=Role.VIEWER)
    b = make_team("Team B", bob=Role.ADMIN)
    for team in (a, b):
        plan = Plan.objects.create(team=team, key=f"{team.slug[-1].upper()}X-BUILD", name="P")
        job = Job.objects.create(plan=plan, key="BUILD", name="Build")
        task = TaskConfig.objects.create(
            job=job, region="eu-west-1", connector=make_connector(team), description=team.name
        )
        TaskRun.objects.create(task=task, trigger="manual", outcome="succeeded")
        TaskRun.objects.create(task=task, trigger="schedule", outcome="failed", error_class="X")
        AuditEvent.objects.create(action="task.run", summary=f"Ran {team.name}", team=team)
    AuditEvent.objects.create(action="login.failed", summary="Failed sign-in for x")
    return a, b


def _get(client, user, name, **query):
    client.login(username=user, password=PASSWORD)
    return client.get(reverse(name), query)


def test_the_run_history_shows_the_users_teams_only_and_filters(client, teams):
    page = _get(client, "alice", "run_list").content.decode()
    assert "Team A" in page
    assert "Team B" not in page
    assert page.count("<tr>") == 3  # header and 2 runs
    page = client.get(reverse("run_list"), {"outcome": "failed"}).content.decode()
    assert page.count("<tr>") == 2
    assert "failed" in page
    page = client.get(reverse("run_list"), {"team": str(teams[1].id)}).content.decode()
    assert page.count("<tr>") == 3  # another team's id is ignored, not obeyed
    page = client.get(reverse("run_list"), {"trigger": "api"}).content.decode()
    assert "No run matches these filters" in page


def test_the_audit_log_is_for_team_admins(client, teams):
    page = _get(client, "alice", "audit_log").content.decode()
    assert "Ran Team A" in page
    assert "Ran Team B" not in page
    assert "Failed sign-in" not in page
    client.logout()
    page = _get(client, "vic", "audit_log").content.decode()
    assert "Only team admins read the audit log" in page
    assert "Ran Team A" not in page


def test_portal_administrators_read_every_event(client, teams):
    make_user("root", is_superuser=True)
    page = _get(client, "root", "audit_log").content.decode()
    assert "Ran Team A" in page
    assert "Ran Team B" in page
    assert "Failed sign-in" in page


def test_the_audit_log_filters_by_action_who_and_date(client, teams):
    AuditEvent.objects.create(
        action="variables.revealed", summary="Revealed", team=teams[0], actor_name="alice"
    )
    response = _get(client, "alice", "audit_log", action="variables.revealed")
    assert "Revealed" in response.content.decode()
    assert "Ran Team A" not in response.content.decode()
    response = client.get(reverse("audit_log"), {"actor": "ALI"})
    assert "Revealed" in response.content.decode()
    response = client.get(reverse("audit_log"), {"since": "2999-01-01"})
    assert "No event matches these filters" in response.content.decode()
    response = client.get(reverse("audit_log"), {"until": "tomorrow"})
    assert response.status_code == 400
    assert "Until: enter a date as YYYY-MM-DD" in response.content.decode()


def test_long_lists_come_a_page_at_a_time_in_a_fixed_number_of_queries(
    client, teams, django_assert_max_num_queries
):
    task = TaskConfig.objects.get(description="Team A")
    TaskRun.objects.bulk_create(
        TaskRun(task=task, trigger="schedule", outcome="succeeded") for _ in range(120)
    )
    AuditEvent.objects.bulk_create(
        AuditEvent(action="task.run", summary=f"Ran {i}", team=teams[0]) for i in range(120)
    )
    client.login(username="alice", password=PASSWORD)
    with django_assert_max_num_queries(10):
        page = client.get(reverse("run_list"), {"outcome": "succeeded", "page": 2})
    html = page.content.decode()
    assert "Page 2 of 3 (121 in all)" in html
    assert "outcome=succeeded&amp;page=3" in html
    with django_assert_max_num_queries(10):
        page = client.get(reverse("audit_log"), {"page": 3})
    assert "Page 3 of 3 (121 in all)" in page.content.decode()


@pytest.mark.parametrize(
    ("person", "reads"),
    [("alice", True), ("root", True), ("vic", False), ("eve", False)],
)
def test_the_menu_offers_the_audit_log_by_the_rule_the_page_applies(client, teams, person, reads):
    """Issue 24: editors saw an Audit log link that refused them (policy/access.py's
    may_read_audit_log is the one rule for both)."""
    from tasks_app.policy.access import may_read_audit_log

    make_user("root", is_superuser=True)
    eve = make_user("eve")
    teams[0].memberships.create(user=eve, role=Role.EDITOR)
    user = type(eve).objects.get(username=person)
    assert may_read_audit_log(user) is reads
    client.force_login(user)
    dashboard = client.get(reverse("dashboard")).content.decode()
    assert (f'href="{reverse("audit_log")}"' in dashboard) is reads
    audit = client.get(reverse("audit_log"))
    assert audit.context["may_read"] is reads
    assert ("Only team admins read the audit log" in audit.content.decode()) is not reads
