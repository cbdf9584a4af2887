import pytest
from django.contrib.auth import get_user_model

from tasks_app.identity.actor import Actor
from tasks_app.models import ApiToken, AuditEvent, Plan, Profile, Role
from tasks_app.services.tokens import token_create
from tests.factories import PASSWORD, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db):
    return make_user("root", is_superuser=True, is_staff=True)


def _new_password(client) -> str:
    page = client.get("/users/password/")
    assert page.status_code == 200
    return page.context["password"]


def test_a_superuser_creates_an_account_with_a_one_time_password_shown_once(client, root):
    client.force_login(root)
    response = client.post("/users/", {"username": "carol", "email": "carol@example.com"})
    assert response["Location"] == "/users/password/"
    password = _new_password(client)
    assert client.get("/users/password/")["Location"] == "/users/"  # shown once

    carol = get_user_model().objects.get(username="carol")
    assert carol.check_password(password)
    assert not carol.is_superuser
    assert Profile.objects.get(user=carol).must_change_password
    event = AuditEvent.objects.get(action="user.created")
    assert password not in str(event.changes) + event.summary

    client.logout()
    response = client.post("/login/", {"username": "carol", "password": password})
    assert response["Location"] == "/account/password/"


def test_it_refuses_a_taken_username(client, root):
    make_user("carol")
    client.force_login(root)
    response = client.post("/users/", {"username": "Carol"})
    assert response.status_code == 400
    assert "The username Carol is taken." in response.context["form"].errors["username"]


def test_only_superusers_manage_accounts(client, alice):
    client.force_login(alice)
    assert client.get("/users/").status_code == 403
    assert client.post("/users/", {"username": "x"}).status_code == 403
    assert client.post(f"/users/{alice.pk}/grant-superuser/").status_code == 403
    assert client.get("/host-credentials/").status_code == 403
    alice.refresh_from_db()
    assert not alice.is_superuser
    assert "/users/" not in client.get("/").content.decode()


def test_deactivating_ends_sessions_and_revokes_the_persons_tokens(client, root, alice, team_a):
    plan = Plan.objects.create(team=team_a, key="APP", name="App")
    _, raw = token_create(plan=plan, job=None, name="ci", expires_at=None, actor=Actor(user=alice))
    other_client = client.__class__()
    other_client.force_login(alice)
    assert other_client.get("/").status_code == 200
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert other_client.get("/api/v1/plans/APP/variables", **headers).status_code == 200

    client.force_login(root)
    client.post(f"/users/{alice.pk}/deactivate/")

    alice.refresh_from_db()
    assert not alice.is_active
    assert other_client.get("/")["Location"].startswith("/login/")
    anonymous = client.__class__()
    assert anonymous.get("/api/v1/plans/APP/variables", **headers).status_code == 401
    assert ApiToken.objects.get().revoked_at is not None
    assert (
        anonymous.post("/login/", {"username": "alice", "password": PASSWORD}).status_code == 200
    )
    event = AuditEvent.objects.get(action="user.deactivated")
    assert event.changes == {
        "tokens_revoked": 1,
        "invitations_withdrawn": 0,
        "trust_rules_disabled": 0,
    }

    client.post(f"/users/{alice.pk}/activate/")
    alice.refresh_from_db()
    assert alice.is_active
    assert ApiToken.objects.get().revoked_at is not None  # tokens stay revoked


def test_a_password_reset_ends_sessions_and_forces_a_change(client, root, alice):
    other_client = client.__class__()
    other_client.force_login(alice)
    client.force_login(root)
    client.post(f"/users/{alice.pk}/reset-password/")
    password = _new_password(client)

    assert other_client.get("/")["Location"].startswith("/login/")
    alice.refresh_from_db()
    assert alice.check_password(password)
    assert not alice.check_password(PASSWORD)
    response = other_client.post("/login/", {"username": "alice", "password": password})
    assert response["Location"] == "/account/password/"
    assert AuditEvent.objects.filter(action="user.password_reset").count() == 1


def test_superuser_is_granted_and_withdrawn_but_never_from_the_last_one(client, root, alice):
    client.force_login(root)
    client.post(f"/users/{alice.pk}/grant-superuser/")
    alice.refresh_from_db()
    assert alice.is_superuser
    assert alice.is_staff

    client.post(f"/users/{alice.pk}/withdraw-superuser/")
    alice.refresh_from_db()
    assert not alice.is_superuser
    assert not alice.is_staff

    # root is the last one: neither withdrawing nor deactivating it is allowed, even by
    # another superuser whose own rights are about to go.
    response = client.post(f"/users/{root.pk}/deactivate/", follow=True)
    assert "You cannot deactivate your own account." in response.content.decode()
    response = client.post(f"/users/{root.pk}/withdraw-superuser/", follow=True)
    assert "root is the last active portal administrator." in response.content.decode()
    root.refresh_from_db()
    assert root.is_superuser
    assert root.is_active
    actions = list(AuditEvent.objects.values_list("action", flat=True).order_by("created"))
    assert actions == ["user.superuser_granted", "user.superuser_withdrawn"]


def test_unknown_actions_and_users_get_clear_answers(client, root):
    client.force_login(root)
    assert client.post(f"/users/{root.pk}/explode/").status_code == 403
    assert client.post("/users/999999/deactivate/").status_code == 404
    assert client.get(f"/users/{root.pk}/explode/").status_code == 405
    # GET asks first (tests/views/test_confirmations.py); nothing changes.
    assert client.get(f"/users/{root.pk}/deactivate/").status_code == 200
    root.refresh_from_db()
    assert root.is_active


def test_the_users_page_lists_people_with_their_teams(client, root, django_assert_max_num_queries):
    make_team("One", u1=Role.ADMIN, u2=Role.VIEWER)
    make_team("Two", u3=Role.EDITOR)
    client.force_login(root)
    with django_assert_max_num_queries(8):
        page = client.get("/users/").content.decode()
    for name in ("u1", "u2", "u3", "root"):
        assert name in page
