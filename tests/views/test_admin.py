import pytest
from django.apps import apps
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from tasks_app.models import AuditEvent, Connector, Job, Plan, Role, TaskConfig, Team, Variable
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


def test_every_portal_model_is_in_the_admin():
    models = set(apps.get_app_config("tasks_app").get_models())
    assert models - set(admin.site._registry) == set()


def test_a_superuser_opens_every_admin_list_and_form(client):
    make_team("Platform", carol=Role.ADMIN)
    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(root)
    request = RequestFactory().get("/admin/")
    request.user = root
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert client.get(changelist).status_code == 200, changelist
        add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
        expected = 200 if model_admin.has_add_permission(request) else 403
        assert client.get(add).status_code == expected, add


def test_the_audit_log_cannot_be_edited_or_deleted_in_the_admin(client):
    make_team("Platform", carol=Role.ADMIN)
    root = make_user("root", is_superuser=True, is_staff=True)
    event = AuditEvent.objects.create(action="x", summary="y")
    client.force_login(root)
    change = reverse("admin:tasks_app_auditevent_change", args=[event.id])
    response = client.post(change, {"action": "edited", "summary": "edited"})
    delete = reverse("admin:tasks_app_auditevent_delete", args=[event.id])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert (event.action, event.summary) == ("x", "y")
    assert response.status_code == 403


def test_staff_without_superuser_rights_get_no_admin_pages(client):
    client.force_login(make_user("clerk", is_staff=True))
    # Like anyone signed in who is not a portal administrator: the page that says so.
    response = client.get(reverse("admin:tasks_app_team_changelist"), follow=True)
    assert response.status_code == 403


def test_a_signed_in_user_who_is_not_staff_gets_a_clear_page_not_a_loop(client):
    make_team("Platform", carol=Role.ADMIN)
    client.force_login(Team.objects.get().members.get())
    response = client.get("/admin/", follow=True)
    assert response.status_code == 403
    assert len(response.redirect_chain) == 1  # to /admin/login/, which answers at once
    assert "These pages are for portal administrators" in response.content.decode()


def _root(client):
    root = make_user("root", is_superuser=True, is_staff=True)
    client.force_login(root)
    return root


@pytest.mark.parametrize("model", [Connector, TaskConfig, Variable, Plan, Job])
def test_what_the_portal_manages_is_read_only_in_the_admin(client, model):
    _root(client)
    meta = model._meta
    add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
    # A connector with access keys, a task without a job: both were a 500 here.
    data = {"name": "x", "credentials": "access_key", "access_key_id": "AKIAIOSFODNN7EXAMPLE"}
    assert client.post(add, data).status_code == 403
    assert not model.objects.exists()


def test_every_admin_add_form_answers_errors_not_500(client):
    make_team("Platform", carol=Role.ADMIN)
    root = _root(client)
    request = RequestFactory().get("/admin/")
    request.user = root
    for model, model_admin in admin.site._registry.items():
        if not model_admin.has_add_permission(request):
            continue
        meta = model._meta
        add = reverse(f"admin:{meta.app_label}_{meta.model_name}_add")
        response = client.post(add, {"name": "\x00", "slug": "Not A Slug", "role": "boss"})
        assert response.status_code == 200, add
        assert response.context["adminform"].form.errors, add


def test_granting_host_credentials_in_the_admin_is_audited(client):
    team = make_team("Platform")
    _root(client)
    change = reverse("admin:tasks_app_team_change", args=[team.id])
    form = {"name": "Platform", "slug": "platform", "host_credentials_allowed": "on"}
    inline = {"memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    response = client.post(change, {**form, **inline})
    assert response.status_code == 302
    team.refresh_from_db()
    assert team.host_credentials_allowed
    event = AuditEvent.objects.get(action="admin.team.updated")
    assert event.changes == {"host_credentials_allowed": "True"}
    assert (event.actor.username, event.team) == ("root", team)
