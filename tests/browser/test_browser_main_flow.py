"""The browser experience in real Chromium (issue 7): the main flow as a new user does
it, every combination of the conditional fields, and what a viewer may see."""

import re
import subprocess

import pytest
from playwright.sync_api import expect

from tasks_app.identity.actor import SYSTEM
from tasks_app.models import Connector, Job, Plan, Role, TaskConfig, Team, is_masked_key
from tasks_app.services.runs import task_run
from tests.browser import screenshot, sign_in
from tests.factories import SECRET, generated, make_connector, make_team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ANNOUNCEMENTS = """() => {
    window.announced = [];
    const status = document.getElementById("live-status");
    new MutationObserver(() => window.announced.push(status.textContent))
        .observe(status, {childList: true, characterData: true, subtree: true});
}"""


def test_the_main_flow_from_sign_in_to_an_evaluated_bash_snippet(
    live_server, page, aws_endpoint, ecr_expiry
):
    make_team("Platform", alice=Role.ADMIN)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    # The page's clock runs as the real one until the test moves it on (the countdown).
    page.clock.install()
    sign_in(page, live_server.url, "alice")
    expect(page.get_by_role("heading", name="No credential tasks yet")).to_be_visible()
    screenshot(page, "dashboard-empty")

    # A connector, tested against the (moto) AWS endpoint.
    page.get_by_role("link", name="Connectors").click()
    page.get_by_role("link", name="New connector").click()
    page.get_by_label("Name", exact=True).fill("prod-ecr")
    page.get_by_label("Access key ID").fill("AKIAIOSFODNN7EXAMPLE")
    page.get_by_label("Secret access key").fill(SECRET)
    page.get_by_role("button", name="Create connector").click()
    expect(page.get_by_role("heading", name="prod-ecr")).to_be_visible()
    page.get_by_label("Region").select_option("eu-west-1")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".outcome.ok")).to_contain_text("Signed in as")

    # Plan, job and task.
    page.get_by_role("link", name="Plans").click()
    page.get_by_role("link", name="New plan").click()
    page.get_by_label("Key").fill("WEB-BUILD")
    page.get_by_label("Name").fill("Web application")
    page.get_by_role("button", name="Create plan").click()
    page.get_by_role("link", name="Create the first job").click()
    page.get_by_label("Key").fill("BUILD")
    page.get_by_label("Name").fill("Build and push")
    page.get_by_role("button", name="Create job").click()
    page.get_by_role("link", name="Add task").click()
    page.get_by_label("Task description").fill("Push to ECR")
    page.get_by_label("Region", exact=True).select_option("eu-west-1")
    page.get_by_label("Connector", exact=True).select_option(label="prod-ecr (Platform)")
    page.get_by_label("Result: in subsequent plan stages and deployment releases").check()
    screenshot(page, "task-form")
    page.get_by_role("button", name="Create task").click()
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]+/$"))

    # Run now: progress, then the outcome, without leaving the page.
    task_url = page.url
    # What the live region says, kept as it changes: the page also follows the scheduler
    # (the new task is due), whose last poll announces again.
    page.evaluate(ANNOUNCEMENTS)
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#messages")).to_contain_text("Fetched new credentials; they expire")
    page.wait_for_function("window.announced.some(t => t.includes('Fetched new credentials'))")
    assert page.url == task_url
    expect(page.locator("h1 .badge")).to_have_text("ok")
    expect(page.get_by_text("custom.aws.ecr.proxyEndpointDomain", exact=True)).to_be_visible()
    html = page.content()
    values = generated(TaskConfig.objects.get())
    secrets = [value for key, value in values.items() if is_masked_key(key)]
    assert len(secrets) == 3
    for secret in [*secrets, SECRET]:
        assert secret not in html
    expect(page.locator("#values-bash")).to_contain_text("********")
    screenshot(page, "task")

    # Reveal in place, copy the Bash snippet, evaluate what was copied. First the page stops
    # following the scheduler: an answer to a poll still in flight would put the page as
    # anyone sees it, masked, over the revealed values.
    expect(page.locator("#live-status")).to_have_text("All refreshes finished.")
    page.get_by_role("button", name="Reveal values").click()
    # The answer replaces the credentials block in place: wait for its revealed state.
    expect(page.get_by_role("link", name="Hide values")).to_be_visible()
    expect(page.locator("#values-bash")).not_to_contain_text("********")
    assert page.url == task_url
    # The table shows the values too, not ******** beside revealed snippets.
    table = page.locator("table.variables")
    expect(table).not_to_contain_text("********")
    expect(table).to_contain_text(secrets[0])
    page.get_by_role("tab", name="Bash").click()
    copy = page.locator("#values-bash + button")
    copy.click()
    expect(copy).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert "********" not in copied
    names = {key: "bamboo_" + key.replace(".", "_") for key in values}
    printer = "".join(f'printf "%s\\0" "${name}"\n' for name in names.values())
    out = subprocess.run(
        ["bash", "--norc", "--noprofile"],
        input=(copied + "\n" + printer).encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert out.split("\0")[:-1] == [values[key] for key in names]
    screenshot(page, "task-revealed")
    page.get_by_role("link", name="Hide values").click()
    expect(page.locator("table.variables")).to_contain_text("********")
    assert secrets[0] not in page.content()

    # The dashboard: status, a live countdown, the next refresh and the timeline.
    page.get_by_role("link", name="Dashboard").click()
    row = page.locator("#tasks tbody tr", has_text="Push to ECR")
    expect(row.locator(".badge")).to_have_text("ok")
    countdown = row.locator("time[data-countdown]").first
    expect(countdown).to_contain_text("in 11 h")
    # It ticks: an hour later on the page's clock, it says an hour less.
    page.clock.fast_forward("01:00:00")
    expect(countdown).to_contain_text("in 10 h")
    expect(page.locator("svg.timeline-svg rect.valid")).to_have_count(1)
    expect(page.locator("svg.timeline-svg path.next")).to_have_count(1)
    screenshot(page, "dashboard")

    # What happened, for the team's admin: the runs and the audit log.
    page.get_by_role("link", name="Runs").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    screenshot(page, "runs")
    page.get_by_role("link", name="Audit log").click()
    page.get_by_label("Action").select_option("variables.revealed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.list tbody tr")).to_have_count(1)
    expect(page.locator("table.list")).to_contain_text("alice")
    page.goto(live_server.url + "/audit/")
    screenshot(page, "audit-log")


def _choose(page, name: str, value: str) -> None:
    control = page.locator(f'[name="{name}"]')
    if control.first.evaluate("el => el.tagName") == "SELECT":
        control.select_option(value)
    else:
        page.locator(f'[name="{name}"][value="{value}"]').check()


def _visible(page, name: str) -> bool:
    return page.locator(f'[name="{name}"]').first.is_visible()


@pytest.mark.parametrize("credentials", ["access_key", "host"])
def test_connector_fields_follow_every_source_and_principal_type(
    live_server, page, settings, credentials
):
    settings.ALLOW_HOST_CREDENTIALS = True
    make_team("Platform", alice=Role.ADMIN)
    Team.objects.update(host_credentials_allowed=True)
    sign_in(page, live_server.url, "alice")
    page.goto(live_server.url + "/connectors/new/")
    _choose(page, "credentials", credentials)
    for principal in Connector.Principal.values:
        _choose(page, "principal_type", principal)
        shown = {
            name: _visible(page, name)
            for name in (
                "access_key_id",
                "secret_access_key",
                "role_arn",
                "external_id",
                "session_duration",
                "session_policy",
            )
        }
        assert shown == {
            "access_key_id": credentials == "access_key",
            "secret_access_key": credentials == "access_key",
            "role_arn": principal == "assumed_role",
            "external_id": principal == "assumed_role",
            "session_duration": principal != "provided",
            "session_policy": principal in ("assumed_role", "federated_user"),
        }, (credentials, principal)


@pytest.mark.parametrize("source", ["connector", "host"])
def test_task_fields_follow_every_source_region_and_connector_choice(
    live_server, page, settings, source
):
    settings.ALLOW_HOST_CREDENTIALS = True
    team = make_team("Platform", alice=Role.ADMIN)
    Team.objects.update(host_credentials_allowed=True)
    make_connector(team)
    job = Job.objects.create(
        plan=Plan.objects.create(team=team, key="WEB-BUILD", name="Web"), key="BUILD", name="B"
    )
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/jobs/{job.id}/tasks/new/")
    _choose(page, "credentials_source", source)
    connector = Connector.objects.get()
    for region in ("eu-west-1", "variable"):
        _choose(page, "region_choice", region)
        for choice in (str(connector.id), "variable"):
            if source == "connector":
                _choose(page, "connector_choice", choice)
            assert _visible(page, "region_variable") == (region == "variable")
            assert _visible(page, "connector_choice") == (source == "connector")
            assert _visible(page, "connector_variable") == (
                source == "connector" and choice == "variable"
            )
            assert _visible(page, "role_arn") == (source == "host")


def test_a_viewer_sees_no_reveal_button_and_no_secret(live_server, page, aws_endpoint, ecr_expiry):
    team = make_team("Platform", vic=Role.VIEWER)
    connector = make_connector(team)
    job = Job.objects.create(
        plan=Plan.objects.create(team=team, key="WEB-BUILD", name="Web"), key="BUILD", name="B"
    )
    task = TaskConfig.objects.create(job=job, region="eu-west-1", connector=connector)
    assert task_run(task=task, trigger="manual", actor=SYSTEM).outcome == "succeeded"
    secrets = [value for key, value in generated(task).items() if is_masked_key(key)]
    assert len(secrets) == 3

    sign_in(page, live_server.url, "vic")
    for path in ("/", f"/tasks/{task.id}/", "/tasks/", f"/connectors/{connector.id}/"):
        page.goto(live_server.url + path)
        source = page.content()
        for secret in [*secrets, SECRET]:
            assert secret not in source, path
    page.goto(f"{live_server.url}/tasks/{task.id}/")
    expect(page.get_by_role("button", name="Reveal values")).to_have_count(0)
    expect(page.get_by_role("button", name="Run now")).to_have_count(0)
    expect(page.locator("#values-bash")).to_contain_text("********")
    screenshot(page, "task-viewer")


def test_refresh_all_due_shows_progress_until_the_workers_are_done(
    live_server, page, monkeypatch, aws_endpoint, ecr_expiry
):
    """The workers' part is played here, by the same service they call."""
    from tasks_app import tasks as celery_tasks
    from tasks_app.services.refresh import refresh_group

    queued = []
    monkeypatch.setattr(celery_tasks.refresh_group, "delay", queued.append)
    team = make_team("Platform", alice=Role.EDITOR)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    for i in range(3):
        TaskConfig.objects.create(
            job=Job.objects.create(plan=plan, key=f"JOB{i}", name="Job"),
            region="eu-west-1",
            connector=connector,
            description=f"Task {i}",
        )
    sign_in(page, live_server.url, "alice")
    button = page.get_by_role("button", name="Refresh all due (3)")
    button.click()
    expect(page.locator("#messages")).to_contain_text("Queued 3 tasks in 1 AWS call")
    expect(page.locator("#tasks .badge.busy")).to_have_count(3)
    expect(page.get_by_role("button", name="Refresh all due (0)")).to_be_disabled()
    screenshot(page, "dashboard-refreshing")
    url = page.url
    (claim_id,) = queued
    refresh_group(claim_id=claim_id)
    expect(page.locator("#tasks .badge.busy")).to_have_count(0)
    expect(page.locator("#tasks tbody .badge", has_text="ok")).to_have_count(3)
    expect(page.locator("#live-status")).to_have_text("All refreshes finished.")
    assert page.url == url  # no reload
    expect(page.get_by_role("button", name="Refresh all due (0)")).to_be_visible()
