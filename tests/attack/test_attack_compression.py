"""Compressed responses, attacked (BREACH; docs/security.md, "Compressed responses").

The attacker: another site that makes a signed-in person's browser load portal pages many
times with query strings it chooses, and watches the sizes of the encrypted answers. What
they control: every query parameter a page reflects (the dashboard's plan filter reflects
its text in a field), how often the page is asked for. What guards it: only the dashboard
is compressed (no GZipMiddleware; gzip_page on the dashboard alone, which a source walk
holds), and the dashboard carries no secret: its only one, the CSRF token, is masked anew
in every response. Every answer that carries a secret (revealed values, a created API token,
a one-time password, the API's credentials) is sent uncompressed, whatever the request
accepts.
"""

import gzip
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from tasks_app.models import ApiToken, Role
from tasks_app.views.people import SESSION_NEW_PASSWORD
from tests.factories import (
    api_token,
    give_credential,
    make_connector,
    make_job,
    make_plan,
    make_task,
    make_team,
    make_user,
    token_client,
)

pytestmark = pytest.mark.django_db

GZIP = {"HTTP_ACCEPT_ENCODING": "gzip, deflate, br"}
PASSWORD_VALUE = "Sentinel-ecr-password"
REFLECTED = "REFLECTED-attacker-guess-Sentinel-ecr-pa"  # guessing the value's first letters
APP = Path(__file__).resolve().parents[2] / "tasks_app"


@pytest.fixture
def world():
    team = make_team("Platform", ada=Role.ADMIN)
    ada = get_user_model().objects.get(username="ada")
    ada.is_superuser = True
    ada.save()
    plan = make_plan(team)
    job = make_job(plan)
    task = make_task(job, make_connector(team), scope="result", description="the task")
    give_credential(task, password=PASSWORD_VALUE)
    raw_token = api_token(plan, job)
    make_user("erin")
    client = Client()
    client.force_login(ada)
    return {"client": client, "plan": plan, "job": job, "task": task, "token": raw_token}


def _secrets(world, client) -> list[str]:
    """Every secret the session's person could have on a page now."""
    found = [PASSWORD_VALUE, world["token"]]
    session = client.session
    if SESSION_NEW_PASSWORD in session:
        found.append(session[SESSION_NEW_PASSWORD][1])
    csrf = client.cookies.get(settings.CSRF_COOKIE_NAME)
    if csrf is not None:
        found.append(csrf.value)  # the unmasked CSRF secret
    found.extend(ApiToken.objects.values_list("token_hash", flat=True))
    return [secret for secret in found if secret]


def _text(answer) -> str:
    if answer.get("Content-Encoding") == "gzip":
        return gzip.decompress(answer.content).decode()
    return answer.content.decode()


def test_the_compressed_dashboard_reflects_the_attacker_but_carries_no_secret(world):
    client = world["client"]
    # A one-time password waiting in the session to be shown, as after a reset.
    client.post(
        reverse(
            "user_action",
            args=[get_user_model().objects.get(username="erin").pk, "reset-password"],
        )
    )
    assert SESSION_NEW_PASSWORD in client.session
    client.get(reverse("token_list"))  # the CSRF cookie set
    secrets = _secrets(world, client)
    assert len(secrets) >= 4

    for query in ({"plan": REFLECTED}, {"plan": REFLECTED, "status": "ok", "page": "2"}):
        answer = client.get(reverse("dashboard"), query, **GZIP)
        assert answer["Content-Encoding"] == "gzip"
        page = _text(answer)
        assert REFLECTED in page  # the attacker's input is there, compressed with the page
        for secret in secrets:
            assert secret not in page, "a secret compressed next to reflected input"


def test_every_answer_with_a_secret_goes_uncompressed(world):
    client, task = world["client"], world["task"]
    answers = {
        "task reveal": client.post(reverse("task_reveal", args=[task.id]), **GZIP),
        "plan reveal": client.post(reverse("plan_reveal", args=[world["plan"].id]), **GZIP),
        "job reveal": client.post(reverse("job_reveal", args=[world["job"].id]), **GZIP),
    }
    created = client.post(
        reverse("token_create"),
        {"name": REFLECTED, "binding": f"job:{world['job'].id}", "expires_in_days": ""},
        **GZIP,
    )
    answers["created token"] = created
    erin = get_user_model().objects.get(username="erin")
    client.post(reverse("user_action", args=[erin.pk, "reset-password"]))
    one_time = client.session[SESSION_NEW_PASSWORD][1]
    answers["one-time password"] = client.get(reverse("user_password_shown"), **GZIP)
    api = token_client(world["token"])
    for path in (
        f"/api/v1/tasks/{task.id}/env?shell=bash",
        f"/api/v1/tasks/{task.id}/variables",
        f"/api/v1/tasks/{task.id}/docker-config",
        f"/api/v1/tasks/{task.id}/kubernetes-secret?name={REFLECTED.lower()}",
        "/api/v1/plans/WEB-BUILD/env?shell=bash&job=BUILD",
        "/api/v1/docker-config",
    ):
        answers[path] = api.get(path, **GZIP)

    for what, answer in answers.items():
        assert answer.status_code == 200, (what, answer.status_code)
        assert not answer.has_header("Content-Encoding"), what
    assert PASSWORD_VALUE in answers["task reveal"].content.decode()
    assert one_time in answers["one-time password"].content.decode()
    assert re.search(r"ecrp_[A-Za-z0-9_-]{20,}", created.content.decode())


def test_only_the_dashboard_asks_for_compression():
    """A page joins the compressed ones only here, after docs/security.md says why."""
    assert not any("gzip" in name.lower() for name in settings.MIDDLEWARE)
    users = sorted(
        path.relative_to(APP).as_posix()
        for path in APP.rglob("*.py")
        if re.search(r"\bgzip_page\b|GZipMiddleware|compress_string|\bgzip\b", path.read_text())
    )
    assert users == ["views/dashboard.py"]
    source = (APP / "views/dashboard.py").read_text()
    assert source.count("@gzip_page") == 1
    assert re.search(r"@gzip_page\ndef dashboard\(", source)
