import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from tasks_app.lib.crypto import MASK, EncryptionError, Secret
from tasks_app.models import Connector, Role
from tests.factories import make_connector, make_team
from tests.helpers import ROOT, child_environ

pytestmark = pytest.mark.django_db

SENTINEL = "SentinelSecretKey0000/aaaaaaaaaaaaaaaaaa"  # 40 characters, a valid secret shape


def _raw_column(connector) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secret_access_key FROM tasks_app_connector WHERE id = %s",
            [connector.id.hex if connection.vendor == "sqlite" else connector.id],
        )
        return cursor.fetchone()[0]


@pytest.fixture
def team(db):
    return make_team("Platform", alice=Role.ADMIN)


def test_the_database_holds_only_ciphertext(team):
    connector = make_connector(team, secret_access_key=SENTINEL)
    raw = _raw_column(connector)
    assert SENTINEL not in raw
    assert raw.startswith("gAAAAA")  # a Fernet token
    assert connector.secret_access_key.reveal() == SENTINEL


def test_a_stored_secret_never_prints_itself(team):
    secret = make_connector(team, secret_access_key=SENTINEL).secret_access_key
    assert isinstance(secret, Secret)
    assert str(secret) == MASK
    assert repr(secret) == "<Secret ********>"
    assert f"{secret}" == MASK
    assert SENTINEL not in str([secret, {"k": secret}])


def test_the_wrong_key_raises_instead_of_returning_ciphertext(team, settings):
    connector = make_connector(team, secret_access_key=SENTINEL)
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]

    connector = Connector.objects.get(pk=connector.pk)  # listing still works
    with pytest.raises(EncryptionError) as e:
        connector.secret_access_key.reveal()
    assert str(e.value) == (
        "Cannot decrypt tasks_app.Connector.secret_access_key: none of the keys in "
        "ECRPORTAL_ENCRYPTION_KEYS fits. Add the key it was encrypted with back to the list."
    )


def test_rotation_moves_every_secret_to_the_new_key(team, settings, capsys):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    secrets = {f"c{i}": f"Secret{i:02d}" + "x" * 32 for i in range(3)}
    connectors = [make_connector(team, name=n, secret_access_key=s) for n, s in secrets.items()]
    host = make_connector(team, name="no-secret", principal_type="provided")
    Connector.objects.filter(pk=host.pk).update(secret_access_key="")
    before = {c.pk: _raw_column(c) for c in connectors}

    settings.ENCRYPTION_KEYS = [new, old]  # 1. add the new key in front
    call_command("rotate_encryption_keys")  # 2. rotate
    assert "tasks_app.Connector.secret_access_key: 3 re-encrypted" in capsys.readouterr().out
    settings.ENCRYPTION_KEYS = [new]  # 3. remove the old key

    for connector in connectors:
        stored = Connector.objects.get(pk=connector.pk)
        assert stored.secret_access_key.reveal() == secrets[connector.name]
        assert _raw_column(connector) != before[connector.pk]
    assert Connector.objects.get(pk=host.pk).secret_access_key.token == ""


def test_rotation_changes_nothing_when_a_key_is_missing(team, settings):
    old = Fernet.generate_key().decode()
    settings.ENCRYPTION_KEYS = [old]
    first = make_connector(team, name="first")
    settings.ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    second = make_connector(team, name="second")
    raw = {c.pk: _raw_column(c) for c in (first, second)}

    with pytest.raises(CommandError, match=r"Cannot re-encrypt .* Nothing was changed\."):
        call_command("rotate_encryption_keys")
    assert {c.pk: _raw_column(c) for c in (first, second)} == raw


def test_a_malformed_key_stops_the_portal_without_showing_it(tmp_path):
    bad = "not-a-fernet-key-but-a-secret-anyway"
    env = {
        **child_environ(portal_settings=False),
        "ECRPORTAL_DATA_DIR": str(tmp_path),
        "ECRPORTAL_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{bad}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ECRPORTAL_ENCRYPTION_KEYS: key 2 of 2 is not a Fernet key" in result.stderr
    assert bad not in result.stderr + result.stdout


def test_the_default_key_is_generated_once_into_the_data_folder(tmp_path):
    env = {**child_environ(portal_settings=False), "ECRPORTAL_DATA_DIR": str(tmp_path)}
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.ENCRYPTION_KEYS[0])"
    )
    run = [sys.executable, "-c", code]
    env["DJANGO_SETTINGS_MODULE"] = "ecrportal.settings"
    init = [sys.executable, "manage.py", "init_data"]
    subprocess.run(init, cwd=ROOT, env=env, capture_output=True, check=True)
    first = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    subprocess.run(init, cwd=ROOT, env=env, capture_output=True, check=True)
    second = subprocess.run(run, cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    key_file = tmp_path / "encryption_key"
    assert first.stdout == second.stdout == key_file.read_text()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    Fernet(first.stdout.strip())


def test_without_any_key_a_secret_is_neither_stored_nor_read(team, settings):
    connector = make_connector(team, secret_access_key=SENTINEL)
    settings.ENCRYPTION_KEYS = []
    with pytest.raises(EncryptionError, match="No encryption key: set ECRPORTAL_ENCRYPTION_KEYS"):
        Connector.objects.get(pk=connector.pk).secret_access_key.reveal()
    connector.secret_access_key = SENTINEL
    with pytest.raises(EncryptionError, match=r"run `manage\.py init_data`"):
        connector.save()
