"""Accessibility basics (issue 7): contrast, labels, keyboard use, small screens."""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tasks_app.identity.actor import SYSTEM
from tasks_app.models import Job, Plan, Role, TaskConfig
from tasks_app.services.runs import task_run
from tests.browser import new_context, screenshot, sign_in
from tests.factories import make_connector, make_team
from tests.helpers import ROOT

CSS = (ROOT / "tasks_app/static/tasks_app/portal.css").read_text()


def _luminance(hex_color: str) -> float:
    channels = [int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def _contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _var(name: str) -> str:
    return re.search(rf"--{name}:\s*(#[0-9a-fA-F]{{6}})", CSS)[1]


@pytest.mark.parametrize(
    ("foreground", "background"),
    [
        ("text", "bg"),
        ("text", "surface"),
        ("muted", "surface"),
        ("muted", "bg"),
        ("accent", "surface"),
        ("accent", "bg"),
        ("danger", "surface"),
        ("ok", "surface"),
        ("#ffffff", "accent"),
        ("danger", "#fbeeee"),
        ("danger", "#f7dcdd"),
        ("ok", "#dcefe3"),
        ("accent", "#e9f0f9"),
        ("#f1f3f5", "#1c2430"),
    ],
)
def test_text_colours_meet_wcag_aa_contrast(foreground, background):
    fg = foreground if foreground.startswith("#") else _var(foreground)
    bg = background if background.startswith("#") else _var(background)
    assert _contrast(fg, bg) >= 4.5, (foreground, background, round(_contrast(fg, bg), 2))


UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                   && !el.getAttribute('aria-labelledby'))
  .map((el) => el.name || el.id)"""


@pytest.fixture
def task(db):
    team = make_team("Platform", alice=Role.ADMIN)
    connector = make_connector(team)
    job = Job.objects.create(
        plan=Plan.objects.create(team=team, key="WEB-BUILD", name="Web"), key="BUILD", name="B"
    )
    return TaskConfig.objects.create(job=job, region="eu-west-1", connector=connector)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_field_has_a_label_and_the_keyboard_reaches_everything(
    live_server, page, task, aws_endpoint, ecr_expiry
):
    task_run(task=task, trigger="manual", actor=SYSTEM)
    sign_in(page, live_server.url, "alice")
    paths = [
        "/",
        "/connectors/new/",
        f"/jobs/{task.job_id}/tasks/new/",
        f"/tasks/{task.id}/",
        "/runs/",
        "/audit/",
        f"/teams/{task.job.plan.team_id}/notifications/",
        "/tokens/new/",
        "/variables/new/",
        f"/teams/{task.job.plan.team_id}/",  # invite and add forms side by side
    ]
    for path in paths:
        page.goto(live_server.url + path)
        assert page.evaluate(UNLABELLED) == [], path
        assert page.locator("h1").count() == 1, path
    get_user_model().objects.filter(username="alice").update(is_superuser=True)
    for path in ("/users/", "/host-credentials/"):
        page.goto(live_server.url + path)
        assert page.evaluate(UNLABELLED) == [], path
        assert page.locator("h1").count() == 1, path
    get_user_model().objects.filter(username="alice").update(is_superuser=False)

    # Keyboard only: the first Tab offers the skip link, which leads to the content;
    # Run now works from the keyboard and says what happened.
    page.goto(f"{live_server.url}/tasks/{task.id}/")
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"#main$"))
    run_now = page.get_by_role("button", name="Run now")
    run_now.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#messages")).to_contain_text("Fetched new credentials")
    # Tabs follow the arrow keys.
    page.get_by_role("tab", name="Bash").focus()
    page.keyboard.press("ArrowRight")
    expect(page.get_by_role("tab", name="PowerShell")).to_be_focused()
    expect(page.get_by_role("tab", name="PowerShell")).to_have_attribute("aria-selected", "true")


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_fit_a_phone_screen(live_server, browser, task, aws_endpoint, ecr_expiry):
    task_run(task=task, trigger="manual", actor=SYSTEM)
    context = new_context(browser, viewport={"width": 375, "height": 740})
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "alice")
        for name, path in [
            ("dashboard", "/"),
            ("task", f"/tasks/{task.id}/"),
            ("connector-form", "/connectors/new/"),
            ("runs", "/runs/"),
        ]:
            page.goto(live_server.url + path)
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, (path, overflow)
            screenshot(page, f"phone-{name}")
    finally:
        context.close()
