"""manage.py run_task and task_env (SPEC §8.3)."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from tasks_app.formats.snippets import env_snippet
from tasks_app.models import Job, Plan, Role, TaskConfig
from tests.factories import generated, give_credential, make_connector, make_team

pytestmark = pytest.mark.django_db


@pytest.fixture
def task(db):
    team = make_team("Platform", alice=Role.EDITOR)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    return TaskConfig.objects.create(job=job, region="eu-west-1", connector=make_connector(team))


def _call(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_run_task_then_task_env(task, aws_endpoint, ecr_expiry):
    out = _call("run_task", str(task.id))
    assert out.startswith("Fetched credentials for")
    assert "in eu-west-1; they expire" in out

    values = generated(task)
    assert len(values) == 7
    bash = _call("task_env", str(task.id))
    assert sorted(bash.splitlines()) == sorted(env_snippet("bash", values).splitlines())
    assert "$Env:bamboo_custom_aws_ecr_username = 'AWS'" in _call(
        "task_env", str(task.id), "--shell", "powershell"
    )


def test_a_failed_run_is_an_error(task, aws_endpoint, aws_failure):
    aws_failure("api.ecr:GetAuthorizationToken", "AccessDeniedException")
    with pytest.raises(CommandError, match=r"The run failed \(AccessDeniedException\): The cred"):
        call_command("run_task", str(task.id))


def test_task_env_refuses_expired_and_never_fetched_credentials(task, aws_endpoint):
    with pytest.raises(CommandError, match="has not fetched credentials yet"):
        call_command("task_env", str(task.id))
    give_credential(task, expires_in=timedelta(seconds=-1))
    out = io.StringIO()
    with pytest.raises(CommandError, match="expired at"):
        call_command("task_env", str(task.id), stdout=out)
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("nonsense", "'nonsense' is not a task ID (a UUID from the task's page)."),
        ("f24e81bc-7aff-42db-86a2-7cf82e24d871", "No task has the ID"),
    ],
)
def test_bad_task_ids_get_a_clear_message(db, argument, message):
    for command in ("run_task", "task_env"):
        with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
            call_command(command, argument)


def test_a_disabled_task_is_refused(task):
    TaskConfig.objects.filter(pk=task.pk).update(enabled=False)
    task.refresh_from_db()
    with pytest.raises(CommandError, match="is disabled; it never runs"):
        call_command("run_task", str(task.id))
    with pytest.raises(CommandError, match="is disabled; it has no credentials"):
        call_command("task_env", str(task.id))
