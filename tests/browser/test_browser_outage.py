"""The page a person gets while the database is down (issue 25 §2.4), in Chromium on a
phone: a 503 that says what is down and when to try again, not a server error."""

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from playwright.sync_api import expect

from tasks_app.models import Role
from tests.browser import new_context, screenshot, sign_in
from tests.factories import make_team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = 390


def test_a_person_is_told_the_database_is_down_on_a_phone(live_server, browser, monkeypatch):
    make_team("Platform", ada=Role.ADMIN)
    context = new_context(browser, viewport={"width": PHONE, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "ada")
        expect(page.get_by_role("link", name="Dashboard")).to_be_visible()

        def down(self):
            raise OperationalError("connection failed: the database system is shutting down")

        monkeypatch.setattr(SessionStore, "load", down)  # the first read of any page
        response = page.goto(f"{live_server.url}/")
        assert response is not None
        assert response.status == 503
        assert response.headers["retry-after"] == "5"
        expect(
            page.get_by_role("heading", name="The portal is briefly unavailable")
        ).to_be_visible()
        expect(page.locator("main")).to_contain_text(
            "The portal cannot reach the database right now; try again in 5 seconds."
        )
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE
        screenshot(page, "unavailable-phone")

        monkeypatch.undo()  # the database is back: the same session works again
        page.goto(f"{live_server.url}/")
        expect(page.get_by_role("link", name="Dashboard")).to_be_visible()
    finally:
        context.close()
