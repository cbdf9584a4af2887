"""docker-credential-ecrportal (issue 16): the helper run as a process against a live portal,
as Docker runs it, and through a real client from Debian's packages (skopeo), which reads
credHelpers from its auth file without a daemon."""

import base64
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from tasks_app.models import Job, Plan, Role, Scope, TaskConfig
from tests.factories import api_token, give_credential, make_connector, make_team
from tests.helpers import ROOT, require

pytestmark = pytest.mark.django_db(transaction=True)

HELPER = ROOT / "tasks_app" / "downloads" / "docker-credential-ecrportal"
HOST = "111111111111.dkr.ecr.eu-west-1.amazonaws.com"
PASSWORD = "Sentinel-helper-password-7"
PUBLIC_PASSWORD = "Sentinel-public-password-9"


@pytest.fixture
def portal(live_server):
    team = make_team("Platform", ada=Role.ADMIN)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig.objects.create(
        job=job, region="eu-west-1", connector=make_connector(team), scope=Scope.LOCAL
    )
    give_credential(task, password=PASSWORD, endpoint=f"https://{HOST}")
    return {"url": live_server.url, "token": api_token(plan, job), "task": task}


def _run(command, stdin="", env=None, **extra):
    return subprocess.run(
        [sys.executable, str(HELPER), command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": os.environ["PATH"], "HOME": extra.pop("home", "/nonexistent"), **(env or {})},
    )


def test_get_list_store_erase_and_version_speak_the_protocol(portal):
    env = {"ECRPORTAL_URL": portal["url"], "ECRPORTAL_TOKEN": portal["token"]}
    got = _run("get", f"https://{HOST}\n", env)
    assert got.returncode == 0, got.stdout
    assert json.loads(got.stdout) == {
        "ServerURL": f"https://{HOST}",
        "Username": "AWS",
        "Secret": PASSWORD,
    }
    listed = _run("list", env=env)
    assert json.loads(listed.stdout) == {HOST: "AWS"}
    stored = _run("store", json.dumps({"ServerURL": HOST, "Username": "x", "Secret": "y"}), env)
    assert (stored.returncode, stored.stdout) == (0, "")
    assert _run("erase", HOST, env).returncode == 0
    assert _run("version").stdout.startswith("docker-credential-ecrportal ")


def test_an_unknown_registry_is_not_found_as_the_protocol_says(portal):
    env = {"ECRPORTAL_URL": portal["url"], "ECRPORTAL_TOKEN": portal["token"]}
    result = _run("get", "registry.example.com", env)
    assert result.returncode == 1
    assert result.stdout.strip() == "credentials not found in native keychain"


def test_failures_say_what_to_do_and_never_print_the_token(portal, tmp_path):
    bad = _run("get", HOST, {"ECRPORTAL_URL": portal["url"], "ECRPORTAL_TOKEN": "ecrp_wrong"})
    assert bad.returncode == 1
    assert "the portal answered HTTP 401" in bad.stdout
    assert "ecrp_wrong" not in bad.stdout + bad.stderr

    nothing = _run("get", HOST)
    assert nothing.returncode == 1
    assert "set ECRPORTAL_URL and ECRPORTAL_TOKEN" in nothing.stdout

    TaskConfig.objects.filter(pk=portal["task"].pk).update(enabled=False)
    env = {"ECRPORTAL_URL": portal["url"], "ECRPORTAL_TOKEN": portal["token"]}
    disabled = _run("get", HOST, env)
    assert disabled.returncode == 1
    assert "HTTP 404: No task with credentials is visible here." in disabled.stdout


def test_the_config_file_must_be_private(portal, tmp_path):
    config = tmp_path / "helper.json"
    config.write_text(json.dumps({"url": portal["url"], "token": portal["token"]}))
    config.chmod(0o644)
    env = {"ECRPORTAL_HELPER_CONFIG": str(config)}
    loose = _run("get", HOST, env)
    assert loose.returncode == 1
    assert f"make it private (chmod 600 {config})" in loose.stdout
    config.chmod(0o600)
    assert json.loads(_run("get", HOST, env).stdout)["Secret"] == PASSWORD


def test_the_portal_serves_the_helper_it_ships(client):
    response = client.get("/downloads/docker-credential-ecrportal")
    assert response.status_code == 200
    assert response.content == HELPER.read_bytes()
    assert "attachment" in response["Content-Disposition"]
    assert client.get("/downloads/other").status_code == 404
    assert HELPER.stat().st_mode & stat.S_IXUSR


def test_skopeo_logs_in_through_the_helper_from_its_auth_file(portal, tmp_path):
    require(shutil.which("skopeo") is not None, "skopeo is not installed (apt-get install skopeo)")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-ecrportal"
    helper.write_text(f"#!{sys.executable}\n" + HELPER.read_text().split("\n", 1)[1])
    helper.chmod(0o755)
    auth = tmp_path / "auth.json"
    auth.write_text(json.dumps({"credHelpers": {HOST: "ecrportal"}}))
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "REGISTRY_AUTH_FILE": str(auth),
        "ECRPORTAL_URL": portal["url"],
        "ECRPORTAL_TOKEN": portal["token"],
    }
    result = subprocess.run(
        ["skopeo", "login", "--get-login", HOST],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "AWS"
    assert base64.b64encode(PASSWORD.encode()).decode() not in result.stdout + result.stderr


def test_the_credential_helper_serves_public_ecr_aws(live_server):
    team = make_team("Platform", ada=Role.ADMIN)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    task = TaskConfig(
        job=job, registry="public", connector=make_connector(team), scope=Scope.LOCAL
    )
    task.full_clean()
    task.save()
    give_credential(task, password=PUBLIC_PASSWORD, endpoint="https://public.ecr.aws")
    env = {"ECRPORTAL_URL": live_server.url, "ECRPORTAL_TOKEN": api_token(plan, job)}
    for asked in ("public.ecr.aws", "https://public.ecr.aws", "https://public.ecr.aws/v2/"):
        got = _run("get", f"{asked}\n", env)
        assert got.returncode == 0, got.stdout
        assert json.loads(got.stdout) == {
            "ServerURL": asked,
            "Username": "AWS",
            "Secret": PUBLIC_PASSWORD,
        }
    assert json.loads(_run("list", env=env).stdout) == {"public.ecr.aws": "AWS"}
