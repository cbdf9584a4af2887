import pytest

from tasks_app.models import AuditEvent, Team
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db):
    return make_user("root", is_superuser=True, is_staff=True)


def test_a_superuser_grants_and_withdraws_the_host_identity_on_a_page(
    client, root, team_a, settings
):
    settings.ALLOW_HOST_CREDENTIALS = True
    client.force_login(root)
    page = client.get("/host-credentials/").content.decode()
    assert "Grant to Team A" in page
    assert "ECRPORTAL_ALLOW_HOST_CREDENTIALS</code> is on" in page

    client.post("/host-credentials/", {"team": team_a.id, "allowed": "1"})
    assert Team.objects.get(id=team_a.id).host_credentials_allowed
    assert "Withdraw from Team A" in client.get("/host-credentials/").content.decode()

    client.post("/host-credentials/", {"team": team_a.id, "allowed": "0"})
    assert not Team.objects.get(id=team_a.id).host_credentials_allowed
    actions = list(AuditEvent.objects.order_by("created").values_list("action", flat=True))
    assert actions == ["team.host_credentials_granted", "team.host_credentials_withdrawn"]


def test_the_page_says_when_the_setting_is_off(client, root, team_a, settings):
    settings.ALLOW_HOST_CREDENTIALS = False
    client.force_login(root)
    page = client.get("/host-credentials/").content.decode()
    assert "is off, so no team may use the host" in page


def test_bad_grant_input_is_refused_without_a_change(client, root, team_a):
    client.force_login(root)
    for body in ({"team": "not-a-uuid", "allowed": "1"}, {"team": team_a.id, "allowed": "yes"}):
        response = client.post("/host-credentials/", body, follow=True)
        assert response.status_code == 200
        assert "Choose a team that exists." in response.content.decode()
    assert not Team.objects.get(id=team_a.id).host_credentials_allowed
    assert not AuditEvent.objects.exists()


def test_the_forms_say_why_the_host_identity_is_not_offered(client, alice, team_a, settings):
    from tasks_app.models import Job, Plan

    job = Job.objects.create(
        plan=Plan.objects.create(team=team_a, key="APP", name="App"), key="BUILD", name="Build"
    )
    client.force_login(alice)
    settings.ALLOW_HOST_CREDENTIALS = False
    for path in ("/connectors/new/", f"/jobs/{job.id}/tasks/new/"):
        page = client.get(path).content.decode()
        assert "(ECRPORTAL_ALLOW_HOST_CREDENTIALS); a portal administrator can turn it on" in page

    settings.ALLOW_HOST_CREDENTIALS = True
    for path in ("/connectors/new/", f"/jobs/{job.id}/tasks/new/"):
        page = client.get(path).content.decode()
        assert "is not granted to team Team A; a portal administrator grants it" in page

    Team.objects.filter(id=team_a.id).update(host_credentials_allowed=True)
    for path in ("/connectors/new/", f"/jobs/{job.id}/tasks/new/"):
        page = client.get(path).content.decode()
        assert "not granted" not in page
        assert 'value="host"' in page
