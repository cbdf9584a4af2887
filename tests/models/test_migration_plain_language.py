"""Migration 0017: errors stored before the one diagnosis of AWS failures (issue 24) lose the
upstream markup they quote; a run keeps it in its details."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("tasks_app", "0016_run_actor_name")]
AFTER = [("tasks_app", "0017_plain_language")]
XML = (
    'AWS answered ecr:GetAuthorizationToken with 403: <?xml version="1.0"?>'
    "<Error><Code>SignatureDoesNotMatch</Code></Error>"
)
PARSER = "sts:GetCallerIdentity failed: Unable to parse response: b'<html><body>502</body>'"
PLAIN = "AWS is throttling ecr:GetAuthorizationToken; the call will be retried later."


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def migrator(transactional_db):
    yield _migrate
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def test_stored_markup_is_folded_and_a_run_keeps_it_in_its_details(migrator):
    apps = migrator(BEFORE)
    Team, Plan, Job, Connector, TaskConfig, TaskRun, TaskStatusChange = (
        apps.get_model("tasks_app", name)
        for name in (
            "Team",
            "Plan",
            "Job",
            "Connector",
            "TaskConfig",
            "TaskRun",
            "TaskStatusChange",
        )
    )
    team = Team.objects.create(name="Platform", slug="platform")
    job = Job.objects.create(plan=Plan.objects.create(team=team, key="P", name="P"), key="J")
    task = TaskConfig.objects.create(job=job, region="eu-west-1", last_error=XML)
    failed = TaskRun.objects.create(
        task=task, trigger="schedule", outcome="failed", error_message=XML
    )
    parsed = TaskRun.objects.create(
        task=task, trigger="manual", outcome="failed", error_message=PARSER
    )
    plain = TaskRun.objects.create(
        task=task, trigger="manual", outcome="failed", error_message=PLAIN
    )
    TaskStatusChange.objects.create(task=task, previous="ok", status="failing", error=XML)
    Connector.objects.create(team=team, name="c", last_test_message=PARSER)

    apps = migrator(AFTER)
    TaskRun = apps.get_model("tasks_app", "TaskRun")
    folded = TaskRun.objects.get(pk=failed.pk)
    assert folded.error_message == (
        "AWS answered ecr:GetAuthorizationToken with 403: AWS's answer was no plain text."
    )
    assert folded.aws_answer == XML
    assert TaskRun.objects.get(pk=parsed.pk).error_message == (
        "sts:GetCallerIdentity failed: Unable to parse response: AWS's answer was no plain text."
    )
    assert TaskRun.objects.get(pk=plain.pk).error_message == PLAIN
    assert TaskRun.objects.get(pk=plain.pk).aws_answer == ""
    assert "<" not in apps.get_model("tasks_app", "TaskConfig").objects.get().last_error
    assert "<" not in apps.get_model("tasks_app", "TaskStatusChange").objects.get().error
    assert "<" not in apps.get_model("tasks_app", "Connector").objects.get().last_test_message
