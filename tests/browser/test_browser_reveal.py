"""Revealed values on a page that follows the scheduler: the page's polls never mask them
again while the credential is the same, and a new credential is never shown revealed
without asking (the reveal is for one credential, on this page only)."""

from datetime import timedelta

import pytest
from django.utils.timezone import now
from playwright.sync_api import expect

from tasks_app.models import Role, TaskConfig
from tests.browser import sign_in
from tests.factories import (
    give_credential,
    make_connector,
    make_served_task,
    make_task,
    make_team,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_poll_never_masks_revealed_values_of_the_same_credential(live_server, page):
    team = make_team("Platform", alice=Role.EDITOR)
    _, _, task, _ = make_served_task(team, make_connector(team))
    # Due: the page follows the scheduler, polling every 2 s for as long as it stays due.
    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at=now() - timedelta(seconds=5))
    sign_in(page, live_server.url, "alice")
    task_url = f"{live_server.url}/tasks/{task.pk}/"

    def poll_answered():
        return page.expect_response(lambda r: r.url == task_url and r.request.method == "GET")

    page.goto(task_url)
    table = page.locator("table.variables")
    expect(table).to_contain_text("********")
    page.wait_for_function("() => document.querySelector('[data-poll] [data-busy]') !== null")

    page.get_by_role("button", name="Reveal values").click()
    expect(page.get_by_role("link", name="Hide values")).to_be_visible()
    expect(table).to_contain_text(f"pw-{task.namespace}")
    # Three poll answers after the reveal: the page has swapped in at least two of them
    # (it asks again only once it has swapped the last answer in).
    for _ in range(3):
        with poll_answered():
            pass
    expect(table).to_contain_text(f"pw-{task.namespace}")
    expect(table).not_to_contain_text("********")

    # A new credential arrives: its values are masked until revealed again, and said so.
    give_credential(task, password="pw-rotated")
    expect(page.locator("#live-status")).to_contain_text("reveal them again")
    expect(table).to_contain_text("********")
    assert "pw-rotated" not in page.content()


def test_a_refused_reveal_says_why_beside_the_button_and_aloud(live_server, page):
    """A job whose values cannot all be served (a task never fetched any) refuses to reveal,
    as its API does: the reason shows where the person looks, and is announced."""
    team = make_team("Platform", alice=Role.EDITOR)
    _, job, _, _ = make_served_task(team, make_connector(team))
    make_task(job, make_connector(team, name="broken"), namespace="never.fetched")
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/jobs/{job.pk}/")
    page.get_by_role("button", name="Reveal values").click()
    refusal = page.get_by_role("alert")
    expect(refusal).to_contain_text("has not fetched credentials yet")
    expect(refusal).to_be_in_viewport()
    expect(page.locator("#live-status")).to_contain_text("has not fetched credentials yet")
    expect(page.locator("table.variables")).to_contain_text("********")
