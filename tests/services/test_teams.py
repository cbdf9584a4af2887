import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tasks_app.models import AuditEvent, Membership, Role, Team
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db):
    return make_user("root", is_superuser=True, is_staff=True)


def test_a_superuser_creates_a_team_and_becomes_its_admin(client, root):
    client.force_login(root)
    response = client.post("/teams/new/", {"name": "Platform", "slug": "platform"})

    team = Team.objects.get(slug="platform")
    assert response["Location"] == f"/teams/{team.id}/"
    assert Membership.objects.get(team=team).role == Role.ADMIN
    event = AuditEvent.objects.get(action="team.created")
    assert event.actor == root
    assert event.team == team


def test_it_refuses_bad_team_input_and_saves_nothing(client, root):
    make_team("Platform")
    client.force_login(root)
    response = client.post("/teams/new/", {"name": "Platform", "slug": "Not A Slug"})
    assert response.status_code == 200
    form = response.context["form"]
    assert "Team with this Name already exists." in form.errors["name"]
    assert "lowercase letters, digits and single hyphens" in form.errors["slug"][0]
    assert Team.objects.count() == 1


def test_only_superusers_create_teams(client, alice):
    client.force_login(alice)
    response = client.post("/teams/new/", {"name": "Mine", "slug": "mine"})
    assert response.status_code == 403
    assert "Only portal administrators can create teams." in response.content.decode()
    assert not Team.objects.filter(slug="mine").exists()


def test_a_team_admin_adds_members_by_username_or_email(client, alice, team_a):
    make_user("erin")
    make_user("finn", email="Finn@Example.com")
    client.force_login(alice)

    client.post(f"/teams/{team_a.id}/members/", {"user": "erin", "role": "editor"})
    client.post(f"/teams/{team_a.id}/members/", {"user": "finn@example.com", "role": "viewer"})

    roles = dict(team_a.memberships.values_list("user__username", "role"))
    assert roles == {"alice": "admin", "erin": "editor", "finn": "viewer"}
    assert AuditEvent.objects.filter(action="membership.added", team=team_a).count() == 2


def test_adding_an_unknown_or_existing_member_explains_why(client, alice, team_a):
    client.force_login(alice)
    response = client.post(f"/teams/{team_a.id}/members/", {"user": "nobody", "role": "viewer"})
    assert response.status_code == 400
    assert "No active account is called &#x27;nobody&#x27;." in response.content.decode()

    response = client.post(f"/teams/{team_a.id}/members/", {"user": "alice", "role": "viewer"})
    assert response.status_code == 400
    assert "alice is already a member of Team A." in response.content.decode()
    assert team_a.memberships.get().role == Role.ADMIN


def test_the_last_admin_can_be_neither_demoted_nor_removed(client, alice, team_a):
    client.force_login(alice)
    mine = team_a.memberships.get()

    response = client.post(
        f"/teams/{team_a.id}/members/{mine.id}/role/", {"role": "viewer"}, follow=True
    )
    assert "alice is the last admin of Team A." in response.content.decode()
    response = client.post(f"/teams/{team_a.id}/members/{mine.id}/remove/", follow=True)
    assert "alice is the last admin of Team A." in response.content.decode()
    assert team_a.memberships.get().role == Role.ADMIN


def test_an_admin_changes_roles_and_removes_members(client, alice, team_a):
    erin = make_user("erin")
    membership = Membership.objects.create(team=team_a, user=erin, role=Role.VIEWER)
    client.force_login(alice)

    client.post(f"/teams/{team_a.id}/members/{membership.id}/role/", {"role": "admin"})
    membership.refresh_from_db()
    assert membership.role == Role.ADMIN
    event = AuditEvent.objects.get(action="membership.role_changed")
    assert event.changes == {"role": ["viewer", "admin"]}

    # With a second admin, alice may now step down.
    mine = team_a.memberships.get(user=alice)
    client.post(f"/teams/{team_a.id}/members/{mine.id}/role/", {"role": "editor"})
    assert team_a.memberships.get(user=alice).role == Role.EDITOR

    client.force_login(erin)
    client.post(f"/teams/{team_a.id}/members/{mine.id}/remove/")
    assert not team_a.memberships.filter(user=alice).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.EDITOR])
def test_members_below_admin_see_the_team_but_cannot_manage_it(client, team_a, role):
    user = make_user("gus")
    Membership.objects.create(team=team_a, user=user, role=role)
    client.force_login(user)

    page = client.get(f"/teams/{team_a.id}/")
    assert page.status_code == 200
    assert "Add a member" not in page.content.decode()

    response = client.post(f"/teams/{team_a.id}/members/", {"user": "gus", "role": "admin"})
    assert response.status_code == 403
    assert "This needs the Admin role in Team A." in response.content.decode()
    assert client.post(f"/teams/{team_a.id}/edit/", {"name": "X", "slug": "x"}).status_code == 403
    assert Membership.objects.get(user=user).role == role


def test_renaming_a_team_is_audited_with_the_change(client, alice, team_a):
    client.force_login(alice)
    client.post(f"/teams/{team_a.id}/edit/", {"name": "Team Alpha", "slug": "team-a"})
    team_a.refresh_from_db()
    assert team_a.name == "Team Alpha"
    assert AuditEvent.objects.get(action="team.updated").changes == {
        "name": ["Team A", "Team Alpha"]
    }


def test_the_team_pages_use_a_fixed_number_of_queries(client, root):
    client.force_login(root)
    for i in range(3):
        make_team(f"T{i}", **{f"u{i}a": Role.ADMIN, f"u{i}b": Role.VIEWER})

    def count(path):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path).status_code == 200
        return len(ctx.captured_queries)

    team = Team.objects.first()
    list_few, detail_few, dashboard_few = (
        count("/teams/"),
        count(f"/teams/{team.id}/"),
        count("/"),
    )
    for i in range(3, 13):
        make_team(f"T{i}", **{f"u{i}a": Role.ADMIN})
    for i in range(10):
        Membership.objects.create(team=team, user=make_user(f"extra{i}"), role=Role.VIEWER)

    assert count("/teams/") == list_few
    assert count("/") == dashboard_few
    assert count(f"/teams/{team.id}/") == detail_few
