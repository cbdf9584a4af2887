"""The connector form and Test connection in a real browser."""

import pytest
from playwright.sync_api import expect

from tasks_app.models import Connector, Role
from tests.browser import screenshot, sign_in
from tests.factories import SECRET, make_team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_creates_and_tests_a_connector(live_server, page, aws_endpoint):
    make_team("Platform", alice=Role.ADMIN)
    sign_in(page, live_server.url, "alice")
    page.get_by_role("link", name="Connectors").click()
    expect(page.get_by_role("heading", name="No connectors yet")).to_be_visible()
    page.get_by_role("link", name="New connector").click()

    role_arn = page.get_by_label("Role ARN")
    policy = page.get_by_label("Session policy")
    duration = page.get_by_label("Session duration (seconds)")
    principal = page.get_by_label("Principal")
    # Provided credentials: nothing of STS shows.
    expect(role_arn).to_be_hidden()
    expect(duration).to_be_hidden()
    principal.select_option("assumed_role")
    expect(role_arn).to_be_visible()
    expect(policy).to_be_visible()
    principal.select_option("session_token")
    expect(role_arn).to_be_hidden()
    expect(policy).to_be_hidden()
    expect(duration).to_be_visible()
    principal.select_option("assumed_role")

    page.get_by_label("Name", exact=True).fill("prod push")
    page.get_by_label("Access key ID").fill("AKIAIOSFODNN7EXAMPLE")
    page.get_by_label("Secret access key").fill(SECRET)
    role_arn.fill("arn:aws:iam::123456789012:role/ecr-push")
    page.get_by_label("External ID").fill("partner-4711")
    screenshot(page, "connector-form")
    page.get_by_role("button", name="Create connector").click()

    expect(page.get_by_role("heading", name="prod push")).to_be_visible()
    page.get_by_label("Region").select_option("eu-west-1")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".outcome[role=status]")).to_contain_text(
        "Signed in as arn:aws:sts::123456789012:assumed-role/ecr-push/ecrportal-alice"
    )
    screenshot(page, "connector")
    assert SECRET not in page.content()
    assert Connector.objects.get().last_test_ok is True


def test_a_web_identity_connector_asks_for_no_key_and_shows_its_trust_policy(
    live_server, page, aws_endpoint, settings
):
    make_team("Platform", alice=Role.ADMIN)
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/connectors/new/")

    page.get_by_label("AWS credentials").select_option("web_identity")
    page.get_by_label("Principal").select_option("assumed_role")
    # No stored key, and no external ID: sts:AssumeRoleWithWebIdentity takes none.
    expect(page.get_by_label("Access key ID")).to_be_hidden()
    expect(page.get_by_label("Secret access key")).to_be_hidden()
    expect(page.get_by_label("External ID")).to_be_hidden()
    expect(page.get_by_text("A web identity always assumes a role")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("keyless")
    page.get_by_label("Role ARN").fill("arn:aws:iam::123456789012:role/ecr-from-portal")
    page.get_by_role("button", name="Create connector").click()

    expect(page.get_by_role("heading", name="keyless")).to_be_visible()
    connector = Connector.objects.get()
    expect(page.locator("#trust-policy")).to_contain_text(f"connector:{connector.id}")
    expect(page.locator("#identity-provider")).to_contain_text("sts.amazonaws.com")
    page.get_by_label("Region").select_option("eu-west-1")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".outcome[role=status]")).to_contain_text(
        "assumed-role/ecr-from-portal/ecrportal-alice"
    )
    screenshot(page, "connector-web-identity")
