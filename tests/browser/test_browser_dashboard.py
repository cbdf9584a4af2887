"""The dashboard as a person with many tasks sees it (issue 24): the urgent first, a page
at a time, each row with its own timeline strip, compressed on the wire."""

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tasks_app.models import Role, TaskConfig
from tests.browser import sign_in
from tests.factories import give_credential, make_due_tasks

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_thirty_tasks_read_most_urgent_first_a_page_at_a_time(live_server, page):
    tasks = make_due_tasks(30, due=False, vic=Role.VIEWER)
    for i, task in enumerate(tasks):
        give_credential(task, expires_in=timedelta(hours=11, minutes=i))
    failing, expiring = tasks[17], tasks[23]
    TaskConfig.objects.filter(pk=failing.pk).update(last_run_ok=False, last_error="boom")
    give_credential(expiring, expires_in=timedelta(minutes=30))

    encodings = []
    page.on(
        "response",
        lambda r: (
            encodings.append(r.headers.get("content-encoding"))
            if r.url == live_server.url + "/"
            else None
        ),
    )
    sign_in(page, live_server.url, "vic")
    rows = page.locator("#tasks tbody tr")
    expect(rows).to_have_count(25)
    # The failing task first, then the one whose token expires soonest.
    expect(rows.nth(0)).to_contain_text(failing.job.key)
    expect(rows.nth(0).locator(".badge").first).to_have_text("failing")
    expect(rows.nth(1)).to_contain_text(expiring.job.key)
    # Each row carries its own timeline strip, beside the task it draws.
    expect(page.locator("#tasks tbody tr svg.strip")).to_have_count(25)
    assert encodings[-1:] == ["gzip"]

    page.get_by_role("link", name="Less urgent").click()
    expect(rows).to_have_count(5)
    expect(page.locator("#tasks")).not_to_contain_text("boom")
    page.get_by_role("link", name="More urgent").click()
    expect(rows).to_have_count(25)
