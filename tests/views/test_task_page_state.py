"""The dashboard and the task page follow the scheduler and agree with the API (issue 15)."""

import re
from datetime import timedelta

import pytest
from django.utils.timezone import now

from tasks_app.models import Job, Plan, Role, TaskConfig
from tests.factories import PASSWORD, give_credential, make_connector, make_team

pytestmark = pytest.mark.django_db

SENTINEL = "Sentinel-Ecr-Password-77"


@pytest.fixture
def task(db):
    team = make_team("Team A", alice=Role.EDITOR, vic=Role.VIEWER)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(
        job=job, region="eu-west-1", connector=make_connector(team), description="the task"
    )
    give_credential(task, password=SENTINEL)
    return task


def _row(page: str, name: str) -> str:
    return next(row for row in page.split("<tr") if f">{name}</a>" in row)


def test_a_due_task_says_queued_and_is_followed_not_a_time_in_the_past(client, task):
    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at=now() - timedelta(seconds=9))
    client.login(username="vic", password=PASSWORD)

    row = _row(client.get("/").content.decode(), "the task")
    assert "queued" in row
    assert "data-busy" in row  # live.js polls while such rows exist
    assert "ago" not in row
    page = client.get(f"/tasks/{task.id}/").content.decode()
    assert re.search(r"<span data-refresh data-busy>.*queued", page)


def test_a_running_task_says_running(client, task):
    at = now()
    TaskConfig.objects.filter(pk=task.pk).update(
        refresh_due_at=at - timedelta(seconds=1), lease_until=at + timedelta(minutes=1)
    )
    client.login(username="vic", password=PASSWORD)
    row = _row(client.get("/").content.decode(), "the task")
    assert "running…" in row
    assert "data-busy" in row


def test_a_scheduled_task_counts_down_and_is_not_polled(client, task):
    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at=now() + timedelta(hours=1))
    client.login(username="vic", password=PASSWORD)
    row = _row(client.get("/").content.decode(), "the task")
    assert "data-countdown data-due" in row  # countdown.js turns it into "queued" when due
    assert "data-busy" not in row


def test_a_disabled_task_shows_no_live_variables(client, task):
    TaskConfig.objects.filter(pk=task.pk).update(enabled=False)
    client.login(username="alice", password=PASSWORD)
    page = client.get(f"/tasks/{task.id}/").content.decode()
    assert "The task is disabled: it serves no credentials" in page
    assert ".ecr.registry" not in page.split("Use the credentials")[0].split("Generated")[1]
    row = _row(client.get("/").content.decode(), "the task")
    assert "(disabled)" in row
    assert "data-countdown" not in row  # no future expiry
    assert client.get(f"/api/v1/tasks/{task.id}/variables").status_code == 409


def test_reveal_shows_the_values_in_the_table_too_and_hide_masks_them(client, task):
    client.login(username="alice", password=PASSWORD)
    masked = client.get(f"/tasks/{task.id}/").content.decode()
    assert SENTINEL not in masked
    assert "Reveal values" in masked

    revealed = client.post(f"/tasks/{task.id}/reveal/").content.decode()
    table = revealed.split('<table class="list variables">')[1].split("</table>")[0]
    assert SENTINEL in table
    assert "********" not in table
    assert f'href="/tasks/{task.id}/">Hide values' in revealed

    assert SENTINEL not in client.get(f"/tasks/{task.id}/").content.decode()


def test_a_failed_run_shows_its_error_once(client, task, monkeypatch):
    from tasks_app.views import tasks as task_views

    def failing_run(*, task, trigger, actor):
        error = "AccessDeniedException: Sentinel-error-text"
        TaskConfig.objects.filter(pk=task.pk).update(last_run_ok=False, last_error=error)
        return task.runs.create(
            trigger=trigger, outcome="failed", error_class="X", error_message=error
        )

    monkeypatch.setattr(task_views, "task_run", failing_run)
    client.login(username="alice", password=PASSWORD)
    page = client.post(f"/tasks/{task.id}/run/", follow=True).content.decode()
    before_history = page.split("Run history")[0]
    assert before_history.count("Sentinel-error-text") == 1  # the banner, no second flash


def test_the_dashboard_counts_every_member_of_a_team(client, db):
    make_team("Team A", alice=Role.ADMIN, bob=Role.VIEWER, carl=Role.EDITOR)
    client.login(username="bob", password=PASSWORD)
    page = client.get("/").content.decode()
    assert re.search(r'Team A</a></td><td data-label="Members">3</td>', page)
    teams = client.get("/teams/").content.decode()
    assert re.search(
        r'<td data-label="Slug"><code>team-a</code></td>\s*<td data-label="Members">3</td>', teams
    )


def test_a_pull_only_task_shows_the_pull_policy_and_a_push_task_the_push_one(client, task):
    """Issue 24: a pull-only task showed the push policy (the PowerUser document)."""
    client.login(username="alice", password=PASSWORD)
    push = client.get(f"/tasks/{task.id}/").content.decode()
    assert "AmazonEC2ContainerRegistryPowerUser" in push
    assert "ecr:PutImage" in push
    TaskConfig.objects.filter(pk=task.pk).update(access=TaskConfig.Access.PULL)
    pull = client.get(f"/tasks/{task.id}/").content.decode()
    section = pull.split("Permissions the task needs")[1]
    assert "AmazonEC2ContainerRegistryReadOnly" in section
    assert "PowerUser" not in section
    assert "ecr:PutImage" not in section
    assert "ecr:BatchGetImage" in section
    assert "cannot push" in section


def test_the_policy_help_page_shows_both_accesses(client, task):
    client.login(username="alice", password=PASSWORD)
    page = client.get("/help/ecr-policy/").content.decode()
    assert "AmazonEC2ContainerRegistryPowerUser" in page
    assert "AmazonEC2ContainerRegistryReadOnly" in page


@pytest.mark.parametrize(
    ("disabled", "created", "said"),
    [
        (False, True, "Created the task. Run it now."),
        (True, True, "Created the task. It is disabled: it does not run until you enable it."),
        (True, False, "Saved the task. It is disabled: it does not run until you enable it."),
        (False, False, "Saved the task."),
    ],
)
def test_saving_never_invites_a_disabled_task_to_run(client, task, disabled, created, said):
    """Issue 24: a disabled task's banner said "Run it now" beside a disabled Run now."""
    client.login(username="alice", password=PASSWORD)
    data = {
        "region_choice": "eu-west-1",
        "namespace": "other.aws" if created else task.namespace,
        "scope": "local",
        "credentials_source": "connector",
        "connector_choice": str(task.connector_id),
    }
    if disabled:
        data["disabled"] = "on"
    url = f"/jobs/{task.job_id}/tasks/new/" if created else f"/tasks/{task.id}/edit/"
    page = client.post(url, data, follow=True).content.decode()
    assert said in page
    if disabled:
        assert "Run it now" not in page
        assert re.search(r"<button[^>]*disabled[^>]*>Run now</button>", page)
