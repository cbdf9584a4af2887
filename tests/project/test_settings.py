import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ImproperlyConfigured

from ecrportal.env import env_bool, env_choice, env_int, env_list, env_url, secret_file
from tests.helpers import ROOT, child_environ

PRODUCTION = {
    "DEBUG": "0",
    "ECRPORTAL_SITE_URL": "https://ecr-portal.example.com",
    "SECRET_KEY": "x7-" + "q9Zr2LmV" * 8,
    "ECRPORTAL_ENCRYPTION_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
}


def manage(*args, env=None, data_dir):
    base = child_environ(portal_settings=False)
    base["ECRPORTAL_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("reader", "value", "expected"),
    [
        (lambda: env_bool("X_VALUE", False), "maybe", "one of 1/0, true/false"),
        (lambda: env_int("X_VALUE", 1), "ten", "a whole number"),
        (lambda: env_int("X_VALUE", 1, minimum=5), "4", "a whole number of at least 5"),
        (lambda: env_list("X_VALUE", []), "a,,b", "a comma-separated list without empty"),
        (lambda: env_url("X_VALUE", "http://a"), "ftp://host", "an absolute URL starting with"),
        (lambda: env_url("X_VALUE", "http://a"), "https://", "an absolute URL"),
        (lambda: env_choice("X_VALUE", "INFO", ["INFO", "DEBUG"]), "LOUD", "one of INFO, DEBUG"),
    ],
)
def test_it_refuses_malformed_values_naming_the_variable(monkeypatch, reader, value, expected):
    monkeypatch.setenv("X_VALUE", value)
    with pytest.raises(ImproperlyConfigured) as e:
        reader()
    assert f"X_VALUE={value!r} is not valid: expected {expected}" in str(e.value)


def test_unset_and_empty_values_take_the_default(monkeypatch):
    monkeypatch.setenv("X_EMPTY", "  ")
    assert env_bool("X_EMPTY", True) is True
    assert env_int("X_UNSET_FOR_SURE", 7) == 7
    assert env_list("X_EMPTY", ["a"]) == ["a"]
    monkeypatch.setenv("X_VALUE", "Yes")
    assert env_bool("X_VALUE", False) is True


def test_secret_files_are_private_and_agreed_on_by_racing_processes(tmp_path):
    path = tmp_path / "sub" / "secret_key"
    counter = iter(range(100))
    with ThreadPoolExecutor(8) as pool:
        values = list(
            pool.map(lambda _: secret_file(path, generate=lambda: f"v{next(counter)}"), range(16))
        )
    assert len(set(values)) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret_key"]


def test_production_settings_pass_the_deploy_check_without_warnings(tmp_path):
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION, data_dir=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_plain_http_is_flagged_by_the_deploy_check(tmp_path):
    env = {**PRODUCTION, "ECRPORTAL_SITE_URL": "http://ecr-portal.example.com"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env, data_dir=tmp_path)
    assert result.returncode != 0
    assert "security.W008" in result.stderr


def test_a_generated_secret_key_is_kept_in_the_data_folder(tmp_path):
    result = manage("init_data", env={"DEBUG": "0"}, data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    key = (tmp_path / "secret_key").read_text().strip()
    assert len(key) >= 50
    assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
    assert manage("check", env={"DEBUG": "0"}, data_dir=tmp_path).returncode == 0
    manage("init_data", data_dir=tmp_path)
    assert (tmp_path / "secret_key").read_text().strip() == key  # kept, not replaced


def test_settings_create_nothing_and_the_checks_name_the_remedy(tmp_path):
    data = tmp_path / "data"
    result = manage("check", data_dir=data)
    assert result.returncode != 0
    assert "ecrportal.E001" in result.stderr
    assert "ecrportal.E002" in result.stderr
    assert "Run `manage.py init_data`" in result.stderr
    assert not data.exists()  # importing the settings wrote nothing


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "sometimes"}, "DEBUG='sometimes' is not valid"),
        ({"DATABASE_URL": "mongodb://x/y"}, "DATABASE_URL is not valid"),
        ({"CELERY_BROKER_URL": "amqp://guest@x//"}, "CELERY_BROKER_URL='amqp://guest@x//'"),
        (
            {"ECRPORTAL_TASK_TIME_LIMIT": "600", "ECRPORTAL_VISIBILITY_TIMEOUT": "600"},
            "ECRPORTAL_VISIBILITY_TIMEOUT (600) must be longer than ECRPORTAL_TASK_TIME_LIMIT",
        ),
        ({"ECRPORTAL_READYZ_TIMEOUT": "0"}, "expected a whole number of at least 1"),
        ({"ECRPORTAL_LOG_LEVEL": "chatty"}, "expected one of DEBUG, INFO"),
        (
            {"ECRPORTAL_OIDC_ISSUER": "https://idp.example.com"},
            "set ECRPORTAL_OIDC_CLIENT_ID and ECRPORTAL_OIDC_CLIENT_SECRET too",
        ),
        (
            {"ECRPORTAL_OIDC_TEAM_MAP": "devs=platform"},
            "ECRPORTAL_OIDC_TEAM_MAP='devs=platform' is not valid: expected a comma-separated",
        ),
        (
            {"ECRPORTAL_OIDC_TEAM_MAP": "devs=platform:owner"},
            "(roles: viewer, editor, admin)",
        ),
        ({"ECRPORTAL_LOCAL_PASSWORDS": "0"}, "ECRPORTAL_LOCAL_PASSWORDS=0 needs single sign-on"),
    ],
)
def test_bad_configuration_stops_the_portal_with_a_clear_message(tmp_path, env, message):
    result = manage("check", env=env, data_dir=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "ImproperlyConfigured" in result.stderr
