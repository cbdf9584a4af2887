"""Schemathesis against the live API: every operation of /api/v1/schema/, every check, for a
signed-in person and for an API token. No server error, no answer outside the schema.

The test starts the portal (pytest-django's live server, on the test database) and runs
schemathesis's own runner (`st run`) against it, seeded and with a bounded number of
examples per operation, so that CI sends the same requests every time.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from tasks_app.identity.actor import Actor
from tasks_app.models import Role
from tasks_app.services.tokens import token_create
from tests.factories import make_connector, make_served_task, make_team

pytestmark = pytest.mark.slow

SEED = 20261128
EXAMPLES = 10
CSRF = "s" * 32  # an unmasked CSRF secret: the cookie and the header carry the same one

CONFIG = f"""
seed = {SEED}
workers = 1

[generation]
max-examples = {EXAMPLES}
database = "none"
# The credentials are the test's own (-H); generated Authorization headers would replace them.
with-security-parameters = false

[checks]
# A schema cannot say that a team must exist or that a role ARN must match the connector's
# partition: data the schema admits may still be refused (400), belong to a team the
# caller cannot see (404), be beyond the caller's role (403) or be in use (409).
positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]
"""


def _actor(user):
    return Actor(user=user, address="127.0.0.1")


@pytest.fixture
def world(transactional_db):
    """A team with a connector, a plan, a job, a task with fresh credentials, a job token."""
    team = make_team("Platform", ada=Role.ADMIN)
    make_team("Other", oscar=Role.ADMIN)
    connector = make_connector(team)
    plan, job, task, variable = make_served_task(team, connector)
    ada = team.members.get()
    _, token = token_create(plan=plan, job=job, name="ci", expires_at=None, actor=_actor(ada))
    return {"ada": ada, "token": token, "task": task, "variable": variable}


def _operations(world) -> str:
    """Existing objects for the operations that address one by ID (else they only meet 404)."""
    known = [
        (r"^/api/v1/variables/\{id\}$", "id", world["variable"].id),
        (r"^/api/v1/tasks/\{id\}$", "id", world["task"].id),
        (r"^/api/v1/tasks/\{task_id\}/", "task_id", world["task"].id),
        (r"^/api/v1/plans/\{plan_key\}/", "plan_key", "WEB-BUILD"),
    ]
    return "".join(  # TOML literal strings ('...') take the regular expressions as they are
        f"\n[[operations]]\ninclude-path-regex = '{pattern}'\n"
        f'parameters = {{ {name} = "{value}" }}\n'
        for pattern, name, value in known
    )


def _schemathesis(live_server, world, tmp_path: Path, *, headers, options=()) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG + _operations(world))
    st = Path(sys.executable).with_name("st")
    args = [str(st), "--config-file", str(config), "--no-color", "run"]
    args += [f"{live_server.url}/api/v1/schema/", "--checks", "all", *options]
    args += ["--report", "junit", "--report-dir", str(tmp_path / "report")]
    for header in headers:
        args += ["-H", header]
    # In the test's folder: schemathesis keeps a cache of its own where it runs.
    done = subprocess.run(
        args, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_api_keeps_its_schema_for_an_api_token(live_server, world, tmp_path, aws_endpoint):
    """What tokens are for: the credential endpoints (the configuration answers tokens 403;
    the session run below covers it)."""
    _schemathesis(
        live_server,
        world,
        tmp_path,
        headers=[f"Authorization: Bearer {world['token']}"],
        options=["--include-path-regex", r"^/api/v1/(tasks/\{task_id\}/|plans/)"],
    )


def test_the_api_keeps_its_schema_for_a_signed_in_person(
    live_server, world, tmp_path, client, aws_endpoint
):
    client.force_login(world["ada"])
    session = client.cookies["sessionid"].value
    _schemathesis(
        live_server,
        world,
        tmp_path,
        headers=[f"Cookie: sessionid={session}; csrftoken={CSRF}", f"X-CSRFToken: {CSRF}"],
        # The session cookie rides on every request, also on those schemathesis sends as
        # unauthenticated; the token run above checks that missing credentials get 401.
        options=["--exclude-checks", "ignored_auth"],
    )
