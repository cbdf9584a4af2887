import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from tasks_app.models import AuditEvent, Profile
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def _ensure_admin(capsys):
    call_command("ensure_admin")
    return capsys.readouterr().out


def test_it_creates_the_first_admin_with_a_one_time_password_shown_once(capsys, client):
    out = _ensure_admin(capsys)

    user = get_user_model().objects.get(username="admin")
    assert user.is_superuser
    assert user.is_staff
    password = out.split("One-time password:")[1].split()[0]
    assert len(password) == 16
    assert user.check_password(password)
    assert Profile.objects.get(user=user).must_change_password
    assert "http://127.0.0.1:8000/" in out
    # The password is not kept anywhere but in the hash.
    event = AuditEvent.objects.get(action="admin.created")
    assert password not in str(event.changes) + event.summary

    again = _ensure_admin(capsys)
    assert "One-time password" not in again
    assert "Sign in as admin" in again
    assert get_user_model().objects.count() == 1


def test_it_uses_the_password_from_the_environment(capsys, settings):
    settings.ADMIN_USERNAME = "ops"
    settings.ADMIN_PASSWORD = "a-long-Chosen-passphrase-77"
    out = _ensure_admin(capsys)

    user = get_user_model().objects.get(username="ops")
    assert user.check_password("a-long-Chosen-passphrase-77")
    assert not Profile.objects.get(user=user).must_change_password
    assert "a-long-Chosen-passphrase-77" not in out


def test_it_refuses_a_weak_password_from_the_environment(settings):
    settings.ADMIN_PASSWORD = "123"
    with pytest.raises(CommandError, match="ECRPORTAL_ADMIN_PASSWORD is not accepted: This"):
        call_command("ensure_admin")
    assert not get_user_model().objects.exists()


def test_it_explains_a_name_taken_by_an_ordinary_account(settings):
    make_user("admin")
    with pytest.raises(CommandError, match="exists but is not a superuser"):
        call_command("ensure_admin")
    assert not get_user_model().objects.filter(is_superuser=True).exists()
