"""People in a real browser (issue 15): an invitation from the team page to a new account,
the Users page, the host-credentials grant, and a dashboard that follows the scheduler."""

from datetime import timedelta

import pytest
from django.utils.timezone import now
from playwright.sync_api import expect

from tasks_app.models import Job, Membership, Plan, Role, TaskConfig, Team
from tests.browser import new_context, screenshot, sign_in
from tests.factories import give_credential, make_connector, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a long enough passphrase 42"


def test_an_admin_invites_and_the_person_joins_with_their_own_password(
    live_server, page, browser, settings
):
    settings.SITE_URL = live_server.url
    team = make_team("Platform", alice=Role.ADMIN)
    sign_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/teams/{team.id}/")

    invite = page.locator("section", has_text="Invite someone")
    invite.get_by_label("E-mail address").fill("newbie@example.com")
    invite.get_by_label("Role", exact=True).select_option("editor")
    invite.get_by_role("button", name="Invite").click()
    expect(page.get_by_text("Invited newbie@example.com.")).to_be_visible()
    link = page.locator("table", has_text="newbie@example.com").locator("code").inner_text()
    assert link.startswith(f"{live_server.url}/invitations/")
    screenshot(page, "team-invitations")

    # The invited person, in a browser of their own.
    context = new_context(browser)
    guest = context.new_page()
    try:
        guest.goto(link)
        expect(guest.get_by_role("heading", name="Join Platform")).to_be_visible()
        guest.get_by_label("Username").fill("newbie")
        guest.get_by_label("Password", exact=True).fill("short")
        guest.get_by_label("Password again").fill("short")
        guest.get_by_role("button", name="Create account and join").click()
        expect(guest.get_by_text("This password is too short.")).to_be_visible()
        guest.get_by_label("Password", exact=True).fill(NEW_PASSWORD)
        guest.get_by_label("Password again").fill(NEW_PASSWORD)
        guest.get_by_role("button", name="Create account and join").click()
        expect(guest.get_by_text("Welcome! You joined Platform.")).to_be_visible()
        expect(guest.get_by_role("heading", name="Platform")).to_be_visible()
        # The link works once.
        guest.goto(link)
        expect(guest.get_by_text("This invitation has been used already.")).to_be_visible()
    finally:
        context.close()
    assert Membership.objects.get(user__username="newbie").role == Role.EDITOR


def test_a_superuser_manages_accounts_and_grants_without_django_admin(live_server, page):
    make_user("root", is_superuser=True, is_staff=True)
    make_user("erin")
    team = make_team("Platform")
    sign_in(page, live_server.url, "root")

    page.get_by_role("link", name="Users").click()
    page.get_by_label("Username").fill("carol")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="One-time password for carol")).to_be_visible()
    assert len(page.locator("#one-time-password").inner_text()) == 16

    page.get_by_role("link", name="Back to users").click()
    row = page.locator("tr", has_text="erin")
    row.get_by_role("link", name="Deactivate").click()
    expect(page.get_by_role("heading", name="Deactivate erin?")).to_be_visible()
    page.get_by_role("button", name="Deactivate").click()
    expect(page.get_by_text("Deactivated erin")).to_be_visible()
    expect(page.locator("tr", has_text="erin")).to_contain_text("deactivated")
    screenshot(page, "users")

    page.get_by_role("link", name="Host credentials").click()
    page.get_by_role("button", name="Grant to Platform").click()
    expect(page.get_by_text("Granted the host's AWS identity for Platform.")).to_be_visible()
    assert Team.objects.get(id=team.id).host_credentials_allowed


def test_the_dashboard_follows_a_task_from_queued_to_ok_without_a_reload(live_server, page):
    team = make_team("Platform", vic=Role.VIEWER)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(
        job=job,
        region="eu-west-1",
        connector=make_connector(team),
        description="Push to ECR",
        refresh_due_at=now() + timedelta(minutes=2),
    )
    page.clock.install()  # the page's clock: the real one until the test moves it on
    sign_in(page, live_server.url, "vic")
    row = page.locator("#tasks tbody tr", has_text="Push to ECR")
    expect(row.locator("time[data-due]")).to_contain_text("in ")
    # When the moment passes it says queued, not "… ago", and the page starts polling.
    page.clock.fast_forward("02:05")
    expect(row).to_contain_text("queued")
    expect(row).not_to_contain_text("ago")
    expect(row.locator(".badge").first).to_have_text("never run")

    # The scheduler runs it (as a worker would: a credential, the next refresh in hours).
    give_credential(task)
    TaskConfig.objects.filter(pk=task.pk).update(refresh_due_at=now() + timedelta(hours=5))
    expect(row.locator(".badge").first).to_have_text("ok")
    expect(row).to_contain_text("in 4 h")
    expect(page.locator("#live-status")).to_have_text("All refreshes finished.")


def test_share_with_teams_never_offers_the_chosen_owner(live_server, page):
    one = make_team("Alpha", ada=Role.ADMIN)
    two = make_team("Beta")
    Membership.objects.create(team=two, user=one.members.get(), role=Role.ADMIN)
    make_team("Gamma")
    sign_in(page, live_server.url, "ada")
    page.goto(live_server.url + "/connectors/new/")
    share = page.locator("fieldset", has_text="Sharing and use")
    page.get_by_label("Owner team").select_option(label="Alpha")
    expect(share.get_by_label("Alpha")).to_be_hidden()
    expect(share.get_by_label("Beta")).to_be_visible()
    share.get_by_label("Beta").check()
    page.get_by_label("Owner team").select_option(label="Beta")
    expect(share.get_by_label("Beta")).to_be_hidden()
    expect(share.get_by_label("Beta")).not_to_be_checked()
    expect(share.get_by_label("Alpha")).to_be_visible()


def test_an_undefined_variable_is_caught_when_the_task_is_saved(live_server, page):
    team = make_team("Platform", eve=Role.EDITOR)
    connector = make_connector(team)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    sign_in(page, live_server.url, "eve")
    page.goto(f"{live_server.url}/jobs/{job.id}/tasks/new/")
    page.get_by_label("Region", exact=True).select_option("variable")
    page.get_by_label("Region variable").fill("${bamboo.aws.region}")
    page.get_by_label("Connector", exact=True).select_option(str(connector.id))
    page.get_by_role("button", name="Create task").click()

    error = page.get_by_text("The region variable ${bamboo.aws.region} is not defined")
    expect(error).to_have_count(1)  # once, at its field; no second banner
    assert not TaskConfig.objects.exists()
    page.get_by_label("These variables will be defined and valid when the task runs").check()
    page.get_by_role("button", name="Create task").click()
    expect(page.get_by_text("Created the task.")).to_be_visible()
    assert TaskConfig.objects.get().region_variable == "${bamboo.aws.region}"
