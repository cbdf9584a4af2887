"""Signing in with a real browser: Debian's Chromium driven by Playwright."""

import pytest
from playwright.sync_api import expect

from tasks_app.models import Profile, Role
from tests.browser import screenshot
from tests.factories import PASSWORD, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_signs_in_through_the_form_and_sees_the_dashboard(live_server, page):
    make_team("Platform", carol=Role.EDITOR)

    page.goto(live_server.url + "/teams/")
    # Anonymous: sent to the sign-in form, which remembers where we were going.
    expect(page).to_have_url(f"{live_server.url}/login/?next=/teams/")
    screenshot(page, "login")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(f"{live_server.url}/teams/")
    page.get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    expect(page.get_by_role("link", name="Platform")).to_be_visible()
    expect(page.get_by_text("No credential tasks yet")).to_be_visible()
    screenshot(page, "dashboard")

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_server.url}/login/")
    expect(page.get_by_text("You have signed out.")).to_be_visible()


def test_a_wrong_password_shows_an_error_next_to_the_form(live_server, page):
    make_user("carol")
    page.goto(live_server.url + "/login/")
    page.get_by_label("Username").fill("carol")
    page.get_by_label("Password").fill("not it")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_contain_text("Please enter a correct username")
    expect(page).to_have_url(f"{live_server.url}/login/")


def test_the_first_admin_replaces_the_one_time_password(live_server, page):
    admin = make_user("admin", password="One-Time-Pass-123", is_superuser=True, is_staff=True)
    Profile.objects.create(user=admin, must_change_password=True)

    page.goto(live_server.url + "/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("One-Time-Pass-123")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="Choose your password")).to_be_visible()
    page.get_by_label("Old password").fill("One-Time-Pass-123")
    page.get_by_label("New password", exact=True).fill("my own Long passphrase 9")
    page.get_by_label("New password confirmation").fill("my own Long passphrase 9")
    page.get_by_role("button", name="Save password").click()

    expect(page.get_by_text("Your password has been changed.")).to_be_visible()
    expect(page.get_by_role("link", name="Create a team")).to_be_visible()
    screenshot(page, "dashboard-empty-admin")
