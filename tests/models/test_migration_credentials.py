"""Migration 0007: the seven stored variables of each task become one credential, and back,
without losing a value a consumer was served."""

import base64
from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils.timezone import now

from tasks_app.models import is_masked_key
from tasks_app.rules.generated_variables import generated_values
from tests.factories import generated

BEFORE = [("tasks_app", "0006_status_changes_notifications")]
AFTER = [("tasks_app", "0007_credentials")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def migrator(transactional_db):
    yield _migrate
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _old_task(apps, *, key, registry_id="", scope="local"):
    Team, Plan, Job = (apps.get_model("tasks_app", n) for n in ("Team", "Plan", "Job"))
    TaskConfig = apps.get_model("tasks_app", "TaskConfig")
    team, _ = Team.objects.get_or_create(name="Platform", slug="platform")
    plan = Plan.objects.create(team=team, key=key, name=key)
    job = Job.objects.create(plan=plan, key="BUILD", name="Build")
    return TaskConfig.objects.create(
        job=job, region="eu-west-1", registry_id=registry_id, scope=scope
    )


def _store_results(apps, task, *, password, registry="123456789012"):
    """What a run stored before 0007: seven rows, the masked ones encrypted."""
    TaskRun = apps.get_model("tasks_app", "TaskRun")
    VariableResult = apps.get_model("tasks_app", "VariableResult")
    run = TaskRun.objects.create(
        task=task, trigger="manual", outcome="succeeded", aws_request_id=f"req-{password}"
    )
    expires = (now() + timedelta(hours=11)).replace(microsecond=0)
    token = base64.b64encode(f"AWS:{password}".encode()).decode()
    values = generated_values(
        namespace=task.namespace,
        token=token,
        username="AWS",
        password=password,
        expires_at=expires,
        proxy_endpoint=f"https://{registry}.dkr.ecr.eu-west-1.amazonaws.com",
    )
    for key, value in values.items():
        masked = is_masked_key(key)
        VariableResult.objects.create(
            task=task,
            run=run,
            plan_id=task.job.plan_id,
            job_id=task.job_id,
            key=key,
            value="" if masked else value,
            secret_value=value if masked else "",
            masked=masked,
            scope=task.scope,
            expires_at=expires,
        )
    return values


def _old_values(apps, task_id):
    VariableResult = apps.get_model("tasks_app", "VariableResult")
    return {
        r.key: (r.secret_value.reveal() if r.masked else r.value)
        for r in VariableResult.objects.filter(task_id=task_id)
    }


def test_it_keeps_every_served_value_both_ways(migrator):
    apps = migrator(BEFORE)
    plain = _old_task(apps, key="WEB-BUILD")
    other = _old_task(apps, key="API-BUILD", registry_id="210987654321", scope="result")
    never = _old_task(apps, key="NEW-BUILD")
    served = {
        plain.pk: _store_results(apps, plain, password="pw-one"),
        other.pk: _store_results(apps, other, password="pw-two", registry="210987654321"),
    }

    apps = migrator(AFTER)
    Credential = apps.get_model("tasks_app", "Credential")
    TaskConfig = apps.get_model("tasks_app", "TaskConfig")
    assert Credential.objects.count() == 2
    assert TaskConfig.objects.get(pk=never.pk).credential_id is None
    migrated = TaskConfig.objects.get(pk=plain.pk).credential
    assert migrated.request_id == "req-pw-one"
    assert (
        "pw-one"
        not in Credential.objects.values_list("token", flat=True).get(pk=migrated.pk).token
    ), "the token stays encrypted at rest"

    # The current models serve exactly what the old rows held.
    migrator(MigrationExecutor(connection).loader.graph.leaf_nodes())
    from tasks_app.models import TaskConfig as Current

    for task_id, values in served.items():
        assert generated(Current.objects.get(pk=task_id)) == values

    apps = migrator(BEFORE)
    for task_id, values in served.items():
        assert _old_values(apps, task_id) == values
    assert _old_values(apps, never.pk) == {}


def test_it_skips_an_incomplete_set(migrator):
    apps = migrator(BEFORE)
    task = _old_task(apps, key="WEB-BUILD")
    _store_results(apps, task, password="pw-one")
    VariableResult = apps.get_model("tasks_app", "VariableResult")
    VariableResult.objects.filter(key__endswith="ecr.proxyEndpoint").delete()

    apps = migrator(AFTER)
    assert apps.get_model("tasks_app", "Credential").objects.count() == 0
    assert apps.get_model("tasks_app", "TaskConfig").objects.get(pk=task.pk).credential_id is None
