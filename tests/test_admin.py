import pytest
from django.apps import apps
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse

from tasks_app.models import AuditEvent, Role
from tests.conftest import make_team, make_user

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
    response = client.get(reverse("admin:tasks_app_team_changelist"))
    assert response.status_code == 403
