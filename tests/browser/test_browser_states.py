"""States that agree with each other, in Chromium (issue 24): a disabled task is not told to
run, a pull-only task shows the pull policy, the menu offers the audit log only to those it
lets in, one submit shows every error, and a token's run names the token."""

import pytest
from playwright.sync_api import expect

from tasks_app.models import ApiToken, Job, Plan, Role, TaskConfig
from tests.browser import screenshot, sign_in
from tests.factories import api_token, make_connector, make_task, make_team, token_client

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def job(db):
    team = make_team("Platform", ada=Role.ADMIN, eve=Role.EDITOR)
    make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    return Job.objects.create(plan=plan, key="BUILD", name="Build")


def _task_form(page, base, job):
    page.goto(f"{base}/jobs/{job.id}/tasks/new/")
    page.get_by_label("Region", exact=True).select_option("eu-west-1")
    page.get_by_label("Connector", exact=True).select_option(label="prod-ecr (Platform)")


def test_a_task_created_disabled_is_not_told_to_run(live_server, page, job):
    sign_in(page, live_server.url, "eve")
    _task_form(page, live_server.url, job)
    page.get_by_label("Task description").fill("Kept for later")
    page.get_by_label("Disable this task").check()
    page.get_by_role("button", name="Create task").click()
    messages = page.locator(".messages")
    expect(messages).to_contain_text("Created the task. It is disabled")
    expect(messages).not_to_contain_text("Run it now")
    expect(page.get_by_role("button", name="Run now")).to_be_disabled()
    # Nor told to run by the empty variables block: the disabled notice says what to do.
    expect(page.locator("#credentials")).to_contain_text("The task is disabled")
    expect(page.locator("#credentials")).not_to_contain_text("run a task")
    screenshot(page, "task-created-disabled")


def test_one_submit_shows_every_error(live_server, page, job):
    sign_in(page, live_server.url, "eve")
    _task_form(page, live_server.url, job)
    page.get_by_label("Region", exact=True).select_option(label="[Use region variable ...]")
    page.get_by_label("Region variable").fill("${bamboo.nowhere}")
    page.get_by_label("Namespace").fill("not a namespace!")
    page.get_by_label("Pull only").check()
    page.get_by_role("button", name="Create task").click()
    # The syntax, the reference and the rule of use, all on the first answer.
    form = page.locator("form[data-conditional]")
    expect(form).to_contain_text("nowhere")
    expect(form).to_contain_text("Pull only needs a connector that assumes a role")
    namespace = page.get_by_label("Namespace")
    expect(namespace).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Region variable")).to_have_attribute("aria-invalid", "true")
    screenshot(page, "task-every-error-at-once")
    assert not TaskConfig.objects.exists()


def test_a_pull_only_task_shows_the_pull_policy(live_server, page, job):
    connector = job.plan.team.connectors.get()
    task = make_task(job, connector, access=TaskConfig.Access.PULL, description="Pull it")
    sign_in(page, live_server.url, "eve")
    page.goto(f"{live_server.url}/tasks/{task.id}/")
    policy = page.locator("section", has_text="Permissions the task needs")
    expect(policy).to_contain_text("AmazonEC2ContainerRegistryReadOnly")
    expect(policy).to_contain_text("ecr:BatchGetImage")
    expect(policy).not_to_contain_text("ecr:PutImage")
    expect(policy).not_to_contain_text("PowerUser")


def test_the_menu_offers_the_audit_log_only_to_those_it_lets_in(live_server, page, job):
    sign_in(page, live_server.url, "eve")  # an editor
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Dashboard")).to_be_visible()
    expect(nav.get_by_role("link", name="Audit log")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    sign_in(page, live_server.url, "ada")  # an admin
    nav.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    expect(page.get_by_text("Only team admins read the audit log")).to_have_count(0)


def test_a_tokens_run_names_the_token_in_runs(live_server, page, job, aws_endpoint, ecr_expiry):
    connector = job.plan.team.connectors.get()
    task = make_task(job, connector, description="Run by CI")
    raw = api_token(job.plan, job)
    named = ApiToken.objects.get().actor_name  # "token:<hint> (<its name>)"
    assert token_client(raw).post(f"/api/v1/tasks/{task.id}/run").status_code == 201
    sign_in(page, live_server.url, "ada")
    page.get_by_role("link", name="Runs").click()
    row = page.locator("tbody tr", has_text="Run by CI")
    expect(row).to_contain_text(named)
    expect(row).not_to_contain_text("scheduler")
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("tbody tr", has_text="Ran task").first).to_contain_text(named)
