"""The dashboard: statuses, urgency, pages, filters, the timeline and Refresh all due."""

import gzip
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tasks_app.models import (
    AuditEvent,
    Job,
    Plan,
    Role,
    Status,
    TaskConfig,
    TaskRun,
    status_filter,
)
from tests.factories import (
    PASSWORD,
    api_token,
    give_credential,
    make_connector,
    make_team,
    token_client,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tasks():
    """One task in each status, in team A; one more in team B."""
    at = timezone.now()
    team = make_team("Team A", alice=Role.EDITOR, vic=Role.VIEWER)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    states = {
        "ok": {"expires_at": at + timedelta(hours=5), "last_run_ok": True},
        "failing": {"expires_at": at + timedelta(hours=5), "last_run_ok": False},
        "failing-never-fetched": {"last_run_ok": False},
        "expired": {"expires_at": at - timedelta(minutes=1), "last_run_ok": True},
        "never run": {},
        "disabled": {"enabled": False, "expires_at": at + timedelta(hours=5)},
    }
    made = {}
    for i, (name, fields) in enumerate(states.items()):
        job = Job.objects.create(plan=plan, key=f"JOB{i}", name=name)
        expires_at = fields.pop("expires_at", None)
        made[name] = task = TaskConfig.objects.create(
            job=job,
            region="eu-west-1",
            connector=connector,
            description=f"task {name}",
            refresh_due_at=at + timedelta(hours=1),
            **fields,
        )
        if expires_at is not None:  # the expiry is the credential's
            last_run_ok = task.last_run_ok
            give_credential(task, expires_in=expires_at - timezone.now())
            TaskConfig.objects.filter(pk=task.pk).update(last_run_ok=last_run_ok)
            task.last_run_ok = last_run_ok
    other = make_team("Team B", bob=Role.ADMIN)
    other_plan = Plan.objects.create(team=other, key="OTHER-BUILD", name="Other")
    TaskConfig.objects.create(
        job=Job.objects.create(plan=other_plan, key="JOB1", name="x"),
        region="eu-west-1",
        connector=make_connector(other),
        description="task of team B",
    )
    return made


def test_the_status_filter_agrees_with_the_status_of_every_task(tasks):
    every = list(TaskConfig.objects.all())
    for status in Status.values:
        expected = {t.id for t in every if t.status == status}
        assert set(
            TaskConfig.objects.filter(status_filter(status)).values_list("id", flat=True)
        ) == (expected), status
    assert {t.status for t in every} == set(Status.values)


def test_the_dashboard_lists_filters_and_draws_the_users_tasks(
    client, tasks, django_assert_max_num_queries
):
    client.login(username="vic", password=PASSWORD)
    run = TaskRun.objects.create(
        task=tasks["ok"],
        trigger="schedule",
        outcome="succeeded",
        finished=timezone.now(),
        token_expires_at=tasks["ok"].expires_at,
    )
    TaskRun.objects.create(task=tasks["failing"], trigger="schedule", outcome="failed")
    with django_assert_max_num_queries(12):
        page = client.get(reverse("dashboard")).content.decode()
    for task in tasks.values():
        assert str(task) in page
    assert "task of team B" not in page
    # ok's run; the current tokens of failing, expired (a minute ago) and disabled.
    assert page.count('class="valid"') == 4
    assert page.count('class="failed"') == 1
    assert "data-countdown" in page
    assert "in 4 h 59 min" in page
    assert f'datetime="{run.token_expires_at:%Y-%m-%dT%H:%M:%S}' in page

    page = client.get(reverse("dashboard"), {"status": "failing"}).content.decode()
    assert "task failing" in page
    assert "task failing-never-fetched" in page
    assert "task ok" not in page
    assert "task expired" not in page
    page = client.get(reverse("dashboard"), {"plan": "NOPE-PLAN"}).content.decode()
    assert "No task matches these filters" in page
    page = client.get(reverse("dashboard"), {"status": "bogus", "team": "x"}).content.decode()
    assert "task ok" in page  # unknown values are ignored


def test_many_plans_make_the_plan_filter_a_field_for_the_key(client, tasks, monkeypatch):
    from tasks_app.views import dashboard

    client.login(username="vic", password=PASSWORD)
    assert '<option value="WEB-BUILD">WEB-BUILD Web</option>' in client.get("/").content.decode()
    monkeypatch.setattr(dashboard, "PLAN_CHOICES", 0)
    page = client.get(reverse("dashboard"), {"plan": "WEB-BUILD"}).content.decode()
    assert '<option value="WEB-BUILD"' not in page
    assert 'name="plan" value="WEB-BUILD"' in page  # what was asked, kept in the field
    assert len(_listed(page)) == 6


def test_refresh_all_due_queues_what_the_user_may_edit(
    client, tasks, monkeypatch, django_capture_on_commit_callbacks
):
    from tasks_app import tasks as celery_tasks

    queued = []
    monkeypatch.setattr(celery_tasks.refresh_group, "delay", queued.append)
    client.login(username="alice", password=PASSWORD)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("refresh_due"), {"next": "https://evil.example/"}, follow=True
        )
    assert response.redirect_chain[-1][0] == reverse("dashboard")
    # Failing (2), expired and never run; not disabled, not team B's. The ok task shares
    # their connector and region: the one AWS call refreshes it too, so their times align.
    names = {tasks[n].id for n in ("failing", "failing-never-fetched", "expired", "never run")}
    assert len(queued) == 1  # one connector, one region: one AWS call
    claimed = TaskConfig.objects.filter(claim=queued[0]).values_list("id", flat=True)
    assert set(claimed) == {*names, tasks["ok"].id}
    assert "Queued 5 tasks in 1 AWS call" in response.content.decode()
    assert "running…" in response.content.decode()
    event = AuditEvent.objects.get(action="tasks.refresh_requested")
    assert event.summary == "Asked for the refresh of 4 due tasks"
    assert event.changes == {"tasks": 5, "groups": 1}

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("refresh_due"))  # all leased now: nothing again
    assert len(queued) == 1


def test_viewers_refresh_nothing(client, tasks, monkeypatch):
    from tasks_app import tasks as celery_tasks

    monkeypatch.setattr(celery_tasks.refresh_group, "delay", pytest.fail)
    client.login(username="vic", password=PASSWORD)
    page = client.get(reverse("dashboard")).content.decode()
    assert "Refresh all due" not in page
    response = client.post(reverse("refresh_due"), follow=True)
    assert "Nothing is due" in response.content.decode()


def _listed(page: str) -> list[str]:
    """The task names of the dashboard's rows, in order."""
    rows = page.split("<tbody>")[1].split("</tbody>")[0]
    return re.findall(r'<td data-label="Task"><a href="[^"]+">([^<]+)</a>', rows)


def test_the_most_urgent_tasks_come_first(client, tasks):
    sooner = TaskConfig.objects.create(
        job=tasks["ok"].job, region="eu-west-1", description="task ok sooner", position=1
    )
    give_credential(sooner, expires_in=timedelta(hours=1))
    client.login(username="vic", password=PASSWORD)
    page = client.get(reverse("dashboard")).content.decode()
    assert _listed(page) == [
        "task expired",  # serves nothing
        "task failing-never-fetched",  # failing, no token: before the one expiring later
        "task failing",
        "task never run",
        "task ok sooner",  # expires in 1 h
        "task ok",  # in 5 h
        "task disabled",
    ]
    assert "by status (expired, failing, never run, ok, disabled)" in page


def test_the_dashboard_pages_through_the_tasks_and_draws_what_it_lists(client, tasks, monkeypatch):
    from tasks_app.views import dashboard

    monkeypatch.setattr(dashboard, "PER_PAGE", 2)
    for task in tasks.values():
        TaskRun.objects.create(task=task, trigger="schedule", outcome="failed")
    client.login(username="vic", password=PASSWORD)
    first = client.get(reverse("dashboard")).content.decode()
    assert _listed(first) == ["task expired", "task failing-never-fetched"]
    assert first.count('class="timeline-svg strip"') == 2  # one strip per row listed
    assert first.count('class="failed"') == 2
    assert "Page 1 of 3 (6 in all)" in first
    assert 'href="?page=2" rel="next">Less urgent →</a>' in first

    # Beyond the last page: the last one; a single page has no pager.
    failing = client.get(reverse("dashboard"), {"status": "failing", "page": 2}).content.decode()
    assert _listed(failing) == ["task failing-never-fetched", "task failing"]
    assert 'class="pager"' not in failing
    team = tasks["ok"].job.plan.team_id
    filtered = client.get(reverse("dashboard"), {"team": team}).content.decode()
    assert f'href="?team={team}&amp;page=2" rel="next">' in filtered  # the filters stay
    second = client.get(reverse("dashboard"), {"page": 2}).content.decode()
    assert _listed(second) == ["task failing", "task never run"]
    assert 'href="?page=1" rel="prev">← More urgent</a>' in second
    last = client.get(reverse("dashboard"), {"page": "x99"}).content.decode()
    assert _listed(last) == ["task expired", "task failing-never-fetched"]  # not a number


def test_the_dashboards_queries_do_not_grow_with_the_tasks(client, tasks):
    """Each page costs the same queries whatever its rows hold (no query per row)."""
    client.login(username="vic", password=PASSWORD)
    with CaptureQueriesContext(connection) as few:
        client.get(reverse("dashboard"))
    plan = Plan.objects.get(key="WEB-BUILD")
    for i in range(30):
        job = Job.objects.create(plan=plan, key=f"MORE{i}", name=f"more {i}")
        task = TaskConfig.objects.create(job=job, region="eu-west-1", description=f"more {i}")
        give_credential(task, expires_in=timedelta(hours=i % 7 - 1))
        TaskRun.objects.create(task=task, trigger="schedule", outcome="failed")
    with CaptureQueriesContext(connection) as many:
        page = client.get(reverse("dashboard")).content.decode()
    assert len(_listed(page)) == 25
    assert len(many) == len(few) <= 12, [q["sql"] for q in many]


def test_the_task_page_draws_its_own_timeline(client, tasks):
    task = tasks["failing"]
    TaskRun.objects.create(task=task, trigger="schedule", outcome="failed", error_class="X")
    client.login(username="vic", password=PASSWORD)
    page = client.get(reverse("task_detail", args=[task.id])).content.decode()
    assert "Token validity, last 24 hours and next 12" in page
    assert page.count('class="valid"') == 1  # the current token
    assert page.count('class="failed"') == 1
    assert "Next refresh" in page


def test_long_timeline_labels_fit_their_column_and_show_whole_on_hover(client, tasks):
    long_name = "Push the nightly images of every service to ECR"
    TaskConfig.objects.filter(pk=tasks["ok"].pk).update(description=long_name)
    client.login(username="alice", password=PASSWORD)
    page = client.get(reverse("task_detail", args=[tasks["ok"].id])).content.decode()
    timeline = page.split('class="timeline-svg"')[1].split("</svg>")[0]
    assert f"<title>WEB-BUILD-JOB0 {long_name}</title>WEB-BUILD-JOB0 Push the night\u2026" in (
        timeline
    )
    assert 'clip-path="url(#timeline-labels)"' in timeline


def test_only_the_dashboard_is_compressed(client, tasks):
    """docs/security.md, "Compressed responses": the dashboard (no secret; its CSRF token
    masked anew in every response) is compressed; pages and answers with secrets are not."""
    gzip_ok = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}
    client.login(username="alice", password=PASSWORD)
    answers = [client.get(reverse("dashboard"), **gzip_ok) for _ in range(2)]
    pages = [gzip.decompress(answer.content).decode() for answer in answers]
    assert all(answer["Content-Encoding"] == "gzip" for answer in answers)
    assert "Accept-Encoding" in answers[0]["Vary"]
    assert "task ok" in pages[0]
    csrf = [re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', p)[1] for p in pages]
    assert csrf[0] != csrf[1]  # the same secret, masked differently in each response

    task = tasks["ok"]
    revealed = client.post(reverse("task_reveal", args=[task.id]), **gzip_ok)
    assert not revealed.has_header("Content-Encoding")
    assert f"pw-{task.namespace}" in revealed.content.decode()
    raw = api_token(task.job.plan, task.job)  # the job sees its local variables
    env = token_client(raw).get(reverse("api_task_env", args=[task.id]) + "?shell=bash", **gzip_ok)
    assert env.status_code == 200
    assert not env.has_header("Content-Encoding")
    assert f"pw-{task.namespace}" in env.content.decode()
