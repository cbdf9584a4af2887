"""Issue 24 in real Chromium: plan and job pages offer the task page's tabs (masked until an
editor reveals them), and the API reference is found from any page and reads on a phone."""

import pytest
from playwright.sync_api import expect

from tasks_app.formats.snippets import TOKEN_PLACEHOLDER
from tasks_app.models import Role
from tests.browser import new_context, screenshot, sign_in
from tests.factories import (
    give_credential,
    make_connector,
    make_job,
    make_plan,
    make_task,
    make_team,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BUILD_PW = "Sentinel-Browser-Build-Pw"
SHARED_PW = "Sentinel-Browser-Shared-Pw"


@pytest.fixture
def scope():
    team = make_team("Platform", alice=Role.EDITOR, vic=Role.VIEWER)
    connector = make_connector(team)
    plan = make_plan(team)
    build = make_job(plan)
    give_credential(
        make_task(build, connector, namespace="shared", scope="result"), password=SHARED_PW
    )
    give_credential(make_task(build, connector, namespace="build.local"), password=BUILD_PW)
    return plan, build


def test_the_job_page_has_the_tabs_and_reveals_in_place(live_server, page, scope):
    _, build = scope
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/jobs/{build.id}/")
    for name in ("Bash", "PowerShell", "cmd", "Kubernetes", "Docker config"):
        expect(page.get_by_role("tab", name=name)).to_be_visible()
    expect(page.locator("#values-bash")).to_contain_text(
        "bamboo_build_local_ecr_password='********'"
    )
    expect(page.locator("#ci-bash")).to_contain_text(
        "/api/v1/plans/WEB-BUILD/env?job=BUILD&shell=bash"
    )

    page.get_by_role("tab", name="Kubernetes").click()
    expect(page.locator("#panel-kubernetes")).to_be_visible()
    expect(page.locator("#panel-bash")).to_be_hidden()
    expect(page.locator("#format-kubernetes")).to_contain_text(
        "/api/v1/plans/WEB-BUILD/kubernetes-secret?job=BUILD&name=ecr-pull&namespace=default"
    )
    page.get_by_role("tab", name="Docker config").click()
    expect(page.locator("#format-docker-config")).to_contain_text(
        "/api/v1/plans/WEB-BUILD/docker-config?job=BUILD"
    )
    assert BUILD_PW not in page.content()

    page.get_by_role("button", name="Reveal values").click()
    expect(page.get_by_role("link", name="Hide values")).to_be_visible()
    page.get_by_role("tab", name="Bash").click()
    expect(page.locator("#values-bash")).to_contain_text(
        f"bamboo_build_local_ecr_password='{BUILD_PW}'"
    )
    expect(page.locator("#credentials table.variables")).to_contain_text(SHARED_PW)
    screenshot(page, "job-revealed")
    page.get_by_role("link", name="Hide values").click()
    expect(page.locator("#values-bash")).to_contain_text("********")
    assert BUILD_PW not in page.content()


def test_a_viewer_of_the_plan_page_sees_the_tabs_masked_and_no_reveal(live_server, page, scope):
    plan, _ = scope
    sign_in(page, live_server.url, "vic")
    page.goto(f"{live_server.url}/plans/{plan.id}/")
    expect(page.get_by_role("tab", name="Docker config")).to_be_visible()
    expect(page.locator("#values-bash")).to_contain_text("bamboo_shared_ecr_password='********'")
    expect(page.locator("#values-bash")).not_to_contain_text("build_local")
    expect(page.get_by_role("button", name="Reveal values")).to_have_count(0)
    source = page.content()
    assert SHARED_PW not in source
    assert BUILD_PW not in source
    screenshot(page, "plan-tabs")


def test_the_api_reference_is_found_from_the_footer_and_the_tokens_page(live_server, page, scope):
    sign_in(page, live_server.url, "alice")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.get_by_role("contentinfo").get_by_role("link", name="API reference").click()
    expect(page.get_by_role("heading", name="ECR Portal API")).to_be_visible()
    page.get_by_role("navigation", name="Operations").get_by_role(
        "link", name="GET /api/v1/plans/{plan_key}/env"
    ).click()
    expect(page).to_have_url(f"{live_server.url}/api-reference/#op-plans_env_retrieve")
    expect(page.locator("#op-plans_env_retrieve")).to_contain_text("shell")
    expect(page.locator("#op-plans_env_retrieve")).to_be_in_viewport()
    screenshot(page, "api-reference", full_page=False)

    page.get_by_role("link", name="API tokens").first.click()
    expect(page.locator("#token-example")).to_contain_text(
        f"export ECRPORTAL_TOKEN='{TOKEN_PLACEHOLDER}'"
    )
    page.get_by_role("main").get_by_role("link", name="API reference").click()
    expect(page).to_have_url(f"{live_server.url}/api-reference/")


def test_the_reference_the_tokens_and_scope_pages_fit_a_phone(live_server, browser, scope):
    plan, build = scope
    context = new_context(browser, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "alice")
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        for name, path in [
            ("api-reference", "/api-reference/"),
            ("tokens", "/tokens/"),
            ("plan", f"/plans/{plan.id}/"),
            ("job", f"/jobs/{build.id}/"),
        ]:
            page.goto(live_server.url + path)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, (path, overflow)
            screenshot(page, f"phone-{name}")
    finally:
        context.close()
