"""Tests in real Chromium (Playwright), and what they share: signing in through the form,
screenshots for CI."""

from tests.factories import PASSWORD
from tests.helpers import ARTIFACTS

# Generous, for a loaded machine: they bound waits on the page's state and never pace a
# test (an expect() returns as soon as the page is in the state it waits for).
ACTION_TIMEOUT_MS = 30_000
NAVIGATION_TIMEOUT_MS = 60_000
EXPECT_TIMEOUT_MS = 20_000


def new_context(browser, **options):
    """A browser context whose actions and navigations wait as long as a loaded machine may
    need (expect()'s own timeout is set once, for the session, in tests/conftest.py)."""
    context = browser.new_context(**options)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    return context


def screenshot(page, name, *, full_page=True):
    """The page (or, full_page=False, the part of it on the screen) in test-artifacts."""
    folder = ARTIFACTS / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)


def sign_in(page, base, username):
    page.goto(base + "/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
