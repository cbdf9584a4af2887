"""Accessibility basics (issue 7): contrast, labels, keyboard use, small screens."""

import re

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from tasks_app.identity.actor import SYSTEM
from tasks_app.models import Job, Plan, Role, TaskConfig, Variable
from tasks_app.services.runs import task_run
from tests.browser import new_context, screenshot, sign_in
from tests.factories import api_token, make_connector, make_team
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


# Every cell of every list table, as a phone shows it: its display, whether it lies inside
# the screen, and the heading its ::before shows (the column's data-label).
CELLS = """() => [...document.querySelectorAll('table.list td')].map((td) => {
  const box = td.getBoundingClientRect();
  return {
    text: td.innerText.trim().slice(0, 40),
    empty: td.childNodes.length === 0,
    display: getComputedStyle(td).display,
    inside: box.left >= 0 && box.right <= window.innerWidth + 0.5,
    label: td.dataset.label || null,
    shown: getComputedStyle(td, '::before').content,
  };
})"""
PHONE = 390


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_every_table_reads_on_a_phone(live_server, browser, task, aws_endpoint, ecr_expiry):
    """At 390 px every list table becomes cards: no cell hidden, each under its column's
    heading, nothing wider than the screen; the task link and a revealed value show."""
    task_run(task=task, trigger="manual", actor=SYSTEM)
    team, plan = task.job.plan.team, task.job.plan
    api_token(plan)
    Variable.objects.create(team=team, key="REGISTRY_HOST", value="registry.example.com")
    get_user_model().objects.filter(username="alice").update(is_superuser=True)
    context = new_context(browser, viewport={"width": PHONE, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "alice")
        pages = [
            ("dashboard", "/"),
            ("task", f"/tasks/{task.id}/"),
            ("tasks", "/tasks/"),
            ("runs", "/runs/"),
            ("audit-log", "/audit/"),
            ("connectors", "/connectors/"),
            ("plans", "/plans/"),
            ("plan", f"/plans/{plan.id}/"),
            ("job", f"/jobs/{task.job_id}/"),
            ("tokens", "/tokens/"),
            ("people", "/users/"),
            ("variables", "/variables/"),
            ("teams", "/teams/"),
            ("team", f"/teams/{team.id}/"),
        ]
        for name, path in pages:
            page.goto(live_server.url + path)
            expect(page.locator("table.list td").first).to_be_visible()
            if name == "dashboard":
                row = page.locator("#tasks tbody tr").first
                expect(row.get_by_role("link", name=str(task))).to_be_visible()
                expect(row.locator("svg.strip rect.valid")).to_be_visible()
            if name == "task":
                page.get_by_role("button", name="Reveal values").click()
                expect(page.get_by_role("link", name="Hide values")).to_be_visible()
                value = page.locator("table.variables code.value").first
                expect(value).to_be_visible()
                expect(value).to_be_in_viewport()
                right = value.evaluate("(el) => el.getBoundingClientRect().right")
                assert right <= PHONE, right
                heading = page.get_by_role("heading", name="Generated variables")
                heading.evaluate("(el) => el.scrollIntoView({block: 'start'})")
                screenshot(
                    page, "phone-task", full_page=False
                )  # the values, as a phone shows them
            width = page.evaluate("document.scrollingElement.scrollWidth")
            assert width <= PHONE, (path, width)
            cells = page.evaluate(CELLS)
            assert cells, path
            for cell in cells:
                # Only an empty cell (no error, say) leaves its card.
                assert cell["display"] != "none" or cell["empty"], (path, cell)
                assert cell["inside"], (path, cell)
                if cell["label"]:
                    assert cell["shown"] == f'"{cell["label"]}"', (path, cell)
            if name != "task":
                screenshot(page, f"phone-{name}")
        # The desktop keeps its tables: the headings in the header row, not in the cells.
        page.set_viewport_size({"width": 1280, "height": 800})
        page.goto(live_server.url + "/")
        expect(page.locator("table.list thead th").first).to_be_visible()
        assert page.evaluate(CELLS)[0]["shown"] in ("none", "normal")
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_forms_fit_a_phone_screen(live_server, browser, task):
    context = new_context(browser, viewport={"width": PHONE, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "alice")
        page.goto(live_server.url + "/connectors/new/")
        expect(page.locator("h1")).to_be_visible()
        assert page.evaluate("document.scrollingElement.scrollWidth") <= PHONE
        screenshot(page, "phone-connector-form")
    finally:
        context.close()
