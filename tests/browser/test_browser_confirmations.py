"""Every destructive action asks once first, in Chromium (issue 24): a person clicks it, sees
the question with nothing gone yet, answers, and only then is it gone. The cases are those
of tests/views/test_confirmations.py, which walks the URLs and templates for new ones."""

import pytest
from playwright.sync_api import expect

from tasks_app.models import (
    ApiToken,
    Connector,
    Invitation,
    Job,
    Membership,
    Plan,
    TaskConfig,
    Team,
    TrustedIssuer,
    TrustRule,
    Variable,
)
from tests.browser import new_context, screenshot, sign_in
from tests.factories import PASSWORD, make_destructibles
from tests.views.test_confirmations import ASKS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _gone(model, obj):
    return lambda: not model.objects.filter(pk=obj.pk).exists()


def _erin(w):
    return type(w["erin"]).objects.get(pk=w["erin"].pk)


# case → (the page it is on, the link to click there, the question, done?), in an order
# where nothing a later case needs is gone yet.
def _ada_cases(w):
    plan, team = w["plan"], w["team"]
    return {
        "variable_delete": (
            f"/plans/{plan.id}/",
            lambda page: page.locator("tr", has_text="aws.region").get_by_role(
                "link", name="Delete"
            ),
            "Delete variable aws.region?",
            _gone(Variable, w["variable"]),
        ),
        "token_revoke": (
            "/tokens/",
            lambda page: page.get_by_role("link", name="Revoke ci"),
            f"Revoke the token ci ({w['token'].hint}\u2026)?",
            lambda: ApiToken.objects.get(pk=w["token"].pk).revoked_at is not None,
        ),
        "member_remove": (
            f"/teams/{team.id}/",
            lambda page: page.get_by_role("link", name="Remove vic"),
            "Remove vic from Platform?",
            _gone(Membership, w["membership"]),
        ),
        "invitation_revoke": (
            f"/teams/{team.id}/",
            lambda page: page.get_by_role(
                "link", name="Withdraw the invitation of new@example.com"
            ),
            "Withdraw the invitation of new@example.com?",
            lambda: Invitation.objects.get(pk=w["invitation"].pk).revoked_at is not None,
        ),
        "trust_rule_delete": (
            f"/plans/{plan.id}/trust-rules/",
            lambda page: page.get_by_role("link", name="Delete the trust rule deploy"),
            "Delete the trust rule deploy?",
            _gone(TrustRule, w["rule"]),
        ),
        "connector_delete": (
            f"/connectors/{w['connector'].id}/",
            lambda page: page.get_by_role("link", name="Delete", exact=True),
            "Delete spare-ecr?",
            _gone(Connector, w["connector"]),
        ),
        "task_delete": (
            f"/tasks/{w['task'].id}/",
            lambda page: page.get_by_role("link", name="Delete", exact=True),
            f"Delete task \u201c{w['task']}\u201d?",
            _gone(TaskConfig, w["task"]),
        ),
        "job_delete": (
            f"/jobs/{w['job'].id}/",
            lambda page: page.get_by_role("link", name="Delete", exact=True),
            f"Delete job {w['job']}?",
            _gone(Job, w["job"]),
        ),
        "plan_delete": (
            f"/plans/{plan.id}/",
            lambda page: page.get_by_role("link", name="Delete", exact=True),
            "Delete plan WEB-BUILD?",
            _gone(Plan, plan),
        ),
    }


def _root_cases(w):
    return {
        "oidc_issuer_delete": (
            "/oidc-issuers/",
            lambda page: page.get_by_role("link", name="Stop trusting Example CI"),
            "Stop trusting Example CI?",
            _gone(TrustedIssuer, w["issuer"]),
        ),
        "host_credentials_withdraw": (
            "/host-credentials/",
            lambda page: page.get_by_role("link", name="Withdraw from Platform"),
            "Withdraw the host's AWS identity from Platform?",
            lambda: not Team.objects.get(pk=w["team"].pk).host_credentials_allowed,
        ),
        "user_action:withdraw-superuser": (
            "/users/",
            lambda page: page.get_by_role("link", name="Withdraw administrator from erin"),
            "Withdraw administrator from erin?",
            lambda: not _erin(w).is_superuser,
        ),
        "user_action:reset-password": (
            "/users/",
            lambda page: page.get_by_role("link", name="Reset password of erin"),
            "Reset the password of erin?",
            lambda: not _erin(w).check_password(PASSWORD),
        ),
        "user_action:deactivate": (
            "/users/",
            lambda page: page.get_by_role("link", name="Deactivate erin"),
            "Deactivate erin?",
            lambda: not _erin(w).is_active,
        ),
    }


def test_the_browser_cases_are_every_case_of_the_walk():
    cases = {"variable_delete", "token_revoke", "member_remove", "invitation_revoke"}
    cases |= {"trust_rule_delete", "connector_delete", "task_delete", "job_delete"}
    cases |= {"plan_delete", "oidc_issuer_delete", "host_credentials_withdraw"}
    cases |= {f"user_action:{a}" for a in ("withdraw-superuser", "reset-password", "deactivate")}
    assert cases == set(ASKS)


def _ask_then_answer(page, base, case, where, link, question, done):
    page.goto(base + where)
    link(page).click()
    expect(page.get_by_role("heading", name=question)).to_be_visible()
    assert not done(), f"{case}: acted before the question was answered"
    button = ASKS[case][2]
    expect(page.get_by_role("link", name="Cancel")).to_be_visible()
    page.get_by_role("button", name=button, exact=True).click()
    expect(page.get_by_role("heading", name=question)).not_to_be_visible()
    assert done(), f"{case}: the answer did not act"


def test_a_team_admin_is_asked_once_before_each_destructive_action(live_server, page):
    world = make_destructibles()
    sign_in(page, live_server.url, "ada")
    expect(page.get_by_role("link", name="Dashboard")).to_be_visible()
    for case, (where, link, question, done) in _ada_cases(world).items():
        _ask_then_answer(page, live_server.url, case, where, link, question, done)


def test_a_portal_administrator_is_asked_once_before_each_destructive_action(live_server, page):
    world = make_destructibles()
    sign_in(page, live_server.url, "root")
    expect(page.get_by_role("link", name="Dashboard")).to_be_visible()
    for case, (where, link, question, done) in _root_cases(world).items():
        _ask_then_answer(page, live_server.url, case, where, link, question, done)


def test_cancel_keeps_everything_and_the_question_works_by_keyboard_on_a_phone(
    live_server, browser
):
    world = make_destructibles()
    context = new_context(browser, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, live_server.url, "ada")
        expect(page.get_by_role("link", name="Dashboard")).to_be_visible()
        page.goto(f"{live_server.url}/tokens/")
        page.get_by_role("link", name="Revoke ci").click()
        question = page.get_by_role("heading", name="Revoke the token ci")
        expect(question).to_be_visible()
        screenshot(page, "confirm-phone")
        page.get_by_role("link", name="Cancel").click()
        expect(page.get_by_role("heading", name="API tokens")).to_be_visible()
        assert ApiToken.objects.get(pk=world["token"].pk).revoked_at is None

        # By keyboard alone: the link, then the question's button.
        page.get_by_role("link", name="Revoke ci").focus()
        page.keyboard.press("Enter")
        expect(question).to_be_visible()
        answer = page.get_by_role("button", name="Revoke", exact=True)
        box = answer.bounding_box()
        assert box is not None
        assert box["x"] + box["width"] <= 390
        answer.focus()
        page.keyboard.press("Enter")
        expect(page.locator(".messages")).to_contain_text("Revoked ci")
        assert ApiToken.objects.get(pk=world["token"].pk).revoked_at is not None
    finally:
        context.close()
