"""Team management in a real browser."""

import pytest
from playwright.sync_api import expect

from tasks_app.models import Membership, Role
from tests.browser import screenshot, sign_in
from tests.factories import make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_portal_admin_creates_a_team_and_adds_a_member(live_server, page):
    make_user("root", is_superuser=True, is_staff=True)
    make_user("erin", email="erin@example.com")
    sign_in(page, live_server.url, "root")

    page.get_by_role("link", name="Create a team").click()
    page.get_by_label("Name").fill("Platform Engineering")
    page.get_by_label("Slug").fill("Platform Engineering")
    page.get_by_role("button", name="Create team").click()
    # A bad slug is explained next to its field; nothing is created.
    expect(page.get_by_text("Use lowercase letters, digits and single hyphens")).to_be_visible()
    page.get_by_label("Slug").fill("platform")
    page.get_by_role("button", name="Create team").click()

    expect(page.get_by_role("heading", name="Platform Engineering")).to_be_visible()
    add = page.locator("section", has_text="Add someone who has an account")
    add.get_by_label("Username or e-mail").fill("erin@example.com")
    add.get_by_label("Role", exact=True).select_option("editor")
    page.get_by_role("button", name="Add member").click()

    expect(page.get_by_text("Added erin to Platform Engineering.")).to_be_visible()
    expect(page.get_by_label("Role of erin")).to_have_value("editor")
    assert Membership.objects.get(user__username="erin").role == Role.EDITOR
    screenshot(page, "team")
