"""Plain language as a person sees it in Chromium (issue 24, items 4 and 5): a failed run
explained, AWS's answer collapsed and escaped; the task form, the task page, the connector
list and the dashboard in the portal's own words."""

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tasks_app.identity.actor import Actor
from tasks_app.models import Connector, Job, Plan, Role, TaskConfig, TaskRun
from tasks_app.services.runs import task_run
from tests.browser import screenshot, sign_in
from tests.factories import give_credential, make_connector, make_team
from tests.hostile_aws import BAD_GATEWAY, SIGNATURE

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UNRESOLVED = "These variables will be defined and valid when the task runs"


@pytest.fixture
def world(settings):
    settings.ISSUER_URL = "https://ecr-portal.example.com"
    team = make_team("Platform", alice=Role.ADMIN)
    connector = make_connector(team)
    keyless = Connector(
        team=team,
        name="keyless",
        credentials="web_identity",
        principal_type="assumed_role",
        role_arn="arn:aws:iam::123456789012:role/ecr-from-portal",
    )
    keyless.full_clean()
    keyless.save()
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(
        job=job, region="eu-west-1", connector=connector, description="the task"
    )
    return team, job, task


def test_a_failed_run_reads_as_a_diagnosis_with_aws_s_answer_folded_away(
    live_server, page, world, hostile_aws
):
    team, _, task = world
    hostile_aws.answer = SIGNATURE
    task_run(
        task=task,
        trigger=TaskRun.Trigger.MANUAL,
        actor=Actor(user=team.members.get(username="alice"), address="192.0.2.1"),
    )
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/tasks/{task.id}/")

    banner = page.locator(".outcome.failing[role=status]")
    expect(banner).to_contain_text("The secret access key does not belong to this access key ID")
    expect(banner).not_to_contain_text("<")
    answer = page.locator("details.aws-answer")
    expect(answer.locator("summary")).to_have_text("AWS's answer")
    expect(answer.locator("pre")).to_be_hidden()  # folded until asked for
    answer.locator("summary").click()
    expect(answer.locator("pre")).to_contain_text("<Code>SignatureDoesNotMatch</Code>")
    assert page.locator("details.aws-answer pre code, details.aws-answer pre Error").count() == 0
    # The run history, answer open, stays within the page's column on a desktop screen.
    history = page.locator("section", has=page.get_by_role("heading", name="Run history"))
    column = page.locator("main").bounding_box()
    table = history.locator("table").bounding_box()
    assert table["x"] + table["width"] <= column["x"] + column["width"] + 1
    screenshot(page, "task-failed-run-aws-answer")
    # On a phone the answer wraps inside its cell: the page does not grow sideways for it.
    page.set_viewport_size({"width": 390, "height": 844})
    expect(answer.locator("pre")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    screenshot(page, "task-failed-run-aws-answer-phone")
    page.set_viewport_size({"width": 1280, "height": 800})

    # A proxy's page: said to be no AWS answer, on the dashboard too.
    hostile_aws.answer = BAD_GATEWAY
    task_run(task=task, trigger=TaskRun.Trigger.SCHEDULE, actor=Actor())
    page.goto(live_server.url + "/")
    row = page.locator("tr", has=page.get_by_role("link", name="the task"))
    expect(row).to_contain_text("No AWS answer to ecr:GetAuthorizationToken: HTTP 502")
    expect(row).not_to_contain_text("nginx")


def test_the_task_form_task_page_connectors_and_dashboard_say_what_things_are(
    live_server, page, world
):
    _, job, task = world
    sign_in(page, live_server.url, "alice")

    page.goto(f"{live_server.url}/connectors/")
    keyless = page.locator("tr", has=page.get_by_role("link", name="keyless"))
    expect(keyless).to_contain_text(
        "Assume a role with the portal's ID token (sts:AssumeRoleWithWebIdentity)"
    )
    expect(keyless).not_to_contain_text("(sts:AssumeRole)")
    screenshot(page, "connectors-principals")

    page.goto(f"{live_server.url}/jobs/{job.id}/tasks/new/")
    expect(page.get_by_label("A connector (its access key, role or web identity)")).to_be_checked()
    page.get_by_label("Region", exact=True).select_option("variable")
    page.get_by_label("Region variable").fill("${bamboo.aws.region}")
    page.get_by_label("Namespace").fill("other.aws")
    page.get_by_label("Connector", exact=True).select_option(str(task.connector_id))
    page.get_by_role("button", name="Create task").click()
    error = page.get_by_text("The region variable ${bamboo.aws.region} is not defined")
    expect(error).to_contain_text(f"Define it under Variables, or tick \u201c{UNRESOLVED}\u201d")
    expect(page.get_by_label(UNRESOLVED)).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("allow_undefined_variables")
    screenshot(page, "task-form-unresolved-variable")

    page.goto(f"{live_server.url}/tasks/{task.id}/")
    expect(page.locator("dt:text-is('AWS credentials source') + dd")).to_have_text(
        "A connector (its access key, role or web identity)"
    )
    expect(page.locator("main")).not_to_contain_text("Identity Federation")

    give_credential(task, expires_in=timedelta(seconds=-50))
    page.goto(live_server.url + "/")
    expect(page.get_by_role("columnheader", name="Token", exact=True)).to_be_visible()
    row = page.locator("tr", has=page.get_by_role("link", name="the task"))
    # countdown.js keeps it current, in the words the page was rendered with.
    expect(row.locator("time[data-countdown]").first).to_have_text(
        re.compile(r"^expired \d+ (min \d\d )?s ago$")
    )
