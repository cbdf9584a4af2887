"""Renaming an input variable never unmasks its secret (issue 12): a masked variable renamed to
a plain key needs a new value, and the old secret is discarded; the audit says so."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from tasks_app.models import AuditEvent, Role, Variable
from tests.factories import make_team

pytestmark = pytest.mark.django_db

SENTINEL = "Sentinel-Rename-Secret-42"


@pytest.fixture
def secret_variable(db):
    team = make_team("Platform", alice=Role.EDITOR, vic=Role.VIEWER)
    variable = Variable(team=team, key="db.password")
    variable.set_value(SENTINEL)
    variable.save()
    return variable


def _as(variable, username, client_class=None):
    client = (client_class or APIClient)()
    client.force_login(variable.team.members.get(username=username))
    return client


def _unchanged(variable):
    stored = Variable.objects.get(pk=variable.pk)
    assert (stored.key, stored.value) == ("db.password", "")
    assert stored.secret_value.reveal() == SENTINEL


def test_the_form_refuses_to_unmask_a_secret_by_renaming(secret_variable, client):
    client.force_login(secret_variable.team.members.get(username="alice"))
    url = reverse("variable_edit", args=[secret_variable.id])
    response = client.post(url, {"key": "db.plain", "value": ""})

    assert response.status_code == 200
    assert response.context["form"].errors["value"] == [
        "db.password holds a secret, and db.plain would show its value to every member. "
        "Enter a new value for it (the secret is discarded), or keep a key that contains "
        "password, secret, passphrase or sshkey."
    ]
    assert SENTINEL not in response.content.decode()
    _unchanged(secret_variable)
    assert not AuditEvent.objects.filter(action="variable.updated").exists()


def test_the_api_refuses_to_unmask_a_secret_by_renaming(secret_variable):
    client = _as(secret_variable, "alice")
    url = f"/api/v1/variables/{secret_variable.id}"
    response = client.patch(url, {"key": "db.plain"}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert body["detail"]["value"][0].startswith("db.password holds a secret")
    _unchanged(secret_variable)


@pytest.mark.parametrize("via", ["form", "api"])
def test_a_rename_with_a_new_value_discards_the_secret(secret_variable, client, via):
    if via == "form":
        client.force_login(secret_variable.team.members.get(username="alice"))
        url = reverse("variable_edit", args=[secret_variable.id])
        assert client.post(url, {"key": "db.plain", "value": "visible"}).status_code == 302
    else:
        url = f"/api/v1/variables/{secret_variable.id}"
        body = {"key": "db.plain", "value": "visible"}
        response = _as(secret_variable, "alice").patch(url, body, format="json")
        assert response.status_code == 200, response.json()

    stored = Variable.objects.get(pk=secret_variable.pk)
    assert (stored.key, stored.masked, stored.value) == ("db.plain", False, "visible")
    assert stored.secret_value.token == ""  # the old ciphertext is gone, not kept aside
    event = AuditEvent.objects.get(action="variable.updated")
    assert event.changes == {
        "key": ["db.password", "db.plain"],
        "masked": [True, False],
        "value": "replaced; the secret of db.password was discarded (not recorded)",
    }
    assert SENTINEL not in str(event.changes)


def test_viewers_never_read_a_renamed_secret(secret_variable):
    _as(secret_variable, "alice").patch(
        f"/api/v1/variables/{secret_variable.id}", {"key": "db.plain"}, format="json"
    )
    listing = _as(secret_variable, "vic").get("/api/v1/variables")
    assert SENTINEL not in listing.content.decode()


def test_a_plain_value_renamed_to_a_masked_key_is_kept_encrypted(secret_variable):
    plain = Variable(team=secret_variable.team, key="db.user")
    plain.set_value("app-user")
    plain.save()
    url = f"/api/v1/variables/{plain.id}"
    response = _as(secret_variable, "alice").patch(url, {"key": "db.user.secret"}, format="json")
    assert response.status_code == 200

    plain.refresh_from_db()
    assert (plain.key, plain.value, plain.secret_value.reveal()) == (
        "db.user.secret",
        "",
        "app-user",
    )
    event = AuditEvent.objects.get(action="variable.updated")
    assert event.changes["value"] == "kept, now masked and encrypted"


def test_renaming_between_masked_keys_keeps_the_secret(secret_variable):
    url = f"/api/v1/variables/{secret_variable.id}"
    response = _as(secret_variable, "alice").patch(url, {"key": "db.secret"}, format="json")
    assert response.status_code == 200
    stored = Variable.objects.get(pk=secret_variable.pk)
    assert (stored.key, stored.secret_value.reveal()) == ("db.secret", SENTINEL)
