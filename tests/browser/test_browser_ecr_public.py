"""An Amazon ECR Public task in Chromium on a phone (issue 25 §4): choosing the public
registry hides the region and the registry ID (ECR Public is us-east-1's alone), the task
runs through the AWS stand-in, and its page names public.ecr.aws."""

import re

import pytest
from playwright.sync_api import expect

from tasks_app.models import Job, Plan, Role, TaskConfig
from tests.browser import screenshot, sign_in
from tests.factories import make_connector, make_team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PUBLIC = "Public (Amazon ECR Public: public.ecr.aws)"


def test_a_task_for_ecr_public_from_the_form_to_its_credentials(live_server, page, aws_endpoint):
    page.set_viewport_size({"width": 390, "height": 844})
    team = make_team("Platform", alice=Role.ADMIN)
    make_connector(team, name="prod-ecr")
    job = Job.objects.create(
        plan=Plan.objects.create(team=team, key="WEB-BUILD", name="Web"), key="BUILD", name="B"
    )
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/jobs/{job.id}/tasks/new/")

    region = page.get_by_label("Region", exact=True)
    registry_id = page.get_by_label("Registry ID")
    expect(region).to_be_visible()
    page.get_by_label(PUBLIC).check()
    expect(region).to_be_hidden()
    expect(registry_id).to_be_hidden()
    page.get_by_label("Task description").fill("Pull from ECR Public")
    page.get_by_label("Connector", exact=True).select_option(label="prod-ecr (Platform)")
    screenshot(page, "task-form-ecr-public")
    page.get_by_role("button", name="Create task").click()
    expect(page).to_have_url(re.compile(r"/tasks/[0-9a-f-]+/$"))

    settings = page.locator("dl.settings")
    expect(settings).to_contain_text(PUBLIC)
    expect(settings).to_contain_text("us-east-1")
    expect(settings).not_to_contain_text("Registry ID")
    task = TaskConfig.objects.get()
    assert (task.registry, task.region, task.registry_id) == ("public", "us-east-1", "")

    page.get_by_role("button", name="Run now").click()
    expect(page.locator("#messages")).to_contain_text("Fetched new credentials; they expire")
    expect(page.locator("h1 .badge")).to_have_text("ok")
    expect(page.locator("table.variables")).to_contain_text("public.ecr.aws")
    # The permissions it needs are ECR Public's.
    expect(page.locator("body")).to_contain_text("sts:GetServiceBearerToken")
    # Nothing wider than the phone's screen (the managed policies' long names wrap).
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')]"
        ".filter(e => e.getBoundingClientRect().right > 391)"
        ".map(e => e.tagName + ': ' + e.textContent.slice(0, 60))"
    )
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, wide
    screenshot(page, "task-ecr-public")
