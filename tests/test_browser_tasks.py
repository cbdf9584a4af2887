"""Configuring and running a task in a real browser."""

import subprocess

import pytest
from playwright.sync_api import expect

from tasks_app.models import Role, VariableResult
from tests.conftest import make_connector, make_team
from tests.test_browser_login import _shot
from tests.test_browser_teams import _sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_plan_job_task_run_and_masked_variables(live_server, page, aws_endpoint, ecr_expiry):
    team = make_team("Platform", alice=Role.EDITOR)
    make_connector(team, name="prod-ecr")
    _sign_in(page, live_server.url, "alice")

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

    region_variable = page.get_by_label("Region variable")
    connector_variable = page.get_by_label("Connector variable")
    expect(region_variable).to_be_hidden()
    page.get_by_label("Region", exact=True).select_option("variable")
    expect(region_variable).to_be_visible()
    page.get_by_label("Region", exact=True).select_option("eu-west-1")
    expect(region_variable).to_be_hidden()
    page.get_by_label("Connector", exact=True).select_option(label="[Use connector variable ...]")
    expect(connector_variable).to_be_visible()
    page.get_by_label("Connector", exact=True).select_option(label="prod-ecr (Platform)")
    expect(connector_variable).to_be_hidden()

    page.get_by_label("Task description").fill("Push to ECR")
    page.get_by_label("Result: in subsequent plan stages and deployment releases").check()
    _shot(page, "task-form")
    page.get_by_role("button", name="Create task").click()

    page.get_by_role("button", name="Run now").click()
    expect(page.get_by_text("Fetched new credentials; they expire")).to_be_visible()
    expect(page.get_by_text("custom.aws.ecr.proxyEndpointDomain", exact=True)).to_be_visible()
    expect(page.get_by_text("123456789012.dkr.ecr.eu-west-1.amazonaws.com").first).to_be_visible()
    _shot(page, "task")
    html = page.content()
    for result in VariableResult.objects.filter(masked=True):
        assert result.plain_value() not in html
    assert html.count("********") >= 3

    # Reveal, then the Bash values, evaluated by bash, give the real values.
    page.get_by_role("button", name="Reveal values").click()
    expect(page.get_by_role("button", name="Values revealed")).to_be_disabled()
    page.get_by_role("tab", name="Bash").click()
    snippet = page.locator("#values-bash").inner_text()
    names = {r.key: "bamboo_" + r.key.replace(".", "_") for r in VariableResult.objects.all()}
    printer = "".join(f'printf "%s\\0" "${name}"\n' for name in names.values())
    out = subprocess.run(
        ["bash", "--norc", "--noprofile"],
        input=(snippet + printer).encode(),
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert out.split("\0")[:-1] == [
        VariableResult.objects.get(key=key).plain_value() for key in names
    ]
    _shot(page, "task-revealed")
