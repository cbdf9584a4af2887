"""Reads compiled once per thread (tasks_app/lib/compiled_reads.py) answer what the ORM answers."""

import base64
import threading
import uuid
from datetime import timedelta

import pytest
from django.utils.timezone import now

from tasks_app.lib.compiled_reads import CompiledRead, instance
from tasks_app.models import ApiToken, Job, Plan, TaskConfig
from tasks_app.services.delivery import TOKEN_PATH_FIELDS as TASK_FIELDS
from tests.factories import give_credential, make_connector, make_team

pytestmark = pytest.mark.django_db

SECRET = "sentinel-password-compiled-7f3a"


def _task(key="WEB"):
    team = make_team(f"Team {key}")
    plan = Plan.objects.create(team=team, key=key, name=key)
    job = Job.objects.create(plan=plan, key="BUILD", name="Build", stage=1)
    task = TaskConfig.objects.create(
        job=job, region="eu-west-1", connector=make_connector(team), namespace="n"
    )
    give_credential(task, password=SECRET, expires_in=timedelta(hours=12))
    return task


def _read(fields=TASK_FIELDS):
    return CompiledRead(
        lambda value: TaskConfig.objects.filter(id=value).order_by().values_list(*fields),
        field=TaskConfig._meta.pk,
        fields=fields,
    )


def test_it_gives_the_row_the_orm_gives():
    task, other = _task("WEB"), _task("API")
    read = _read()
    for each in (task, other, task):  # compiled once, then reused with new values
        expected = TaskConfig.objects.filter(id=each.id).values_list(*TASK_FIELDS).get()
        assert read.get(each.id) == expected
    row = read.get(task.id)
    assert isinstance(row[0], uuid.UUID)  # converted as the ORM converts
    assert row[TASK_FIELDS.index("credential__expires_at")] > now()
    token = row[TASK_FIELDS.index("credential__token")].reveal()  # decrypted
    assert base64.b64decode(token).decode() == f"AWS:{SECRET}"


def test_it_answers_none_for_a_missing_row():
    _task()
    assert _read().get(uuid.uuid4()) is None


def test_it_reads_by_a_text_column():
    team = make_team("Tokens")
    plan = Plan.objects.create(team=team, key="P", name="P")
    token = ApiToken.objects.create(
        team=team, plan=plan, name="ci", token_hash="a" * 64, hint="ecrp_…aaaa"
    )
    read = CompiledRead(
        lambda digest: ApiToken.objects.filter(token_hash=digest).values_list("id", "hint"),
        field=ApiToken._meta.get_field("token_hash"),
        fields=("id", "hint"),
    )
    assert read.get("a" * 64) == (token.id, "ecrp_…aaaa")
    assert read.get("b" * 64) is None


def test_each_thread_compiles_its_own():
    task = _task()
    read = _read(("id", "namespace"))
    assert read.get(task.id) == (task.id, "n")
    seen = []

    def other_thread():
        seen.append(getattr(read._local, "compiled", None))

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert seen == [None]  # nothing compiled on this thread leaks to another
    assert read._local.compiled[0] is not None


def test_it_refuses_a_query_that_selects_other_fields():
    task = _task()
    read = CompiledRead(
        lambda value: TaskConfig.objects.filter(id=value).values_list("id"),
        field=TaskConfig._meta.pk,
        fields=("id", "namespace"),
    )
    with pytest.raises(ValueError, match="does not select"):
        read.get(task.id)


def test_it_refuses_a_query_that_takes_its_value_twice():
    task = _task()
    read = CompiledRead(
        lambda value: (
            TaskConfig.objects.filter(id=value).exclude(credential_id=value).values_list("id")
        ),
        field=TaskConfig._meta.pk,
        fields=("id",),
    )
    with pytest.raises(ValueError, match="exactly once"):
        read.get(task.id)


def test_instance_builds_a_model_with_the_rest_deferred():
    task = _task()
    built = instance(TaskConfig, ("namespace", "id"), ("n", task.id))
    assert built.pk == task.id
    assert built.namespace == "n"
    assert not built._state.adding
    assert built.get_deferred_fields() >= {"region", "job_id"}
    assert built.region == "eu-west-1"  # read on access, as the ORM does


def test_instance_refuses_a_field_the_model_lacks():
    with pytest.raises(ValueError, match="no field"):
        instance(TaskConfig, ("id", "nonsense"), (uuid.uuid4(), 1))


# --- CompiledInsert ------------------------------------------------------------------------


def test_an_insert_writes_the_row_create_writes():
    from tasks_app.lib.compiled_reads import CompiledInsert
    from tasks_app.models import AuditEvent

    team = make_team("Audited")
    insert = CompiledInsert(AuditEvent)
    made = [
        AuditEvent(action="x.y", summary=f"n{i}", team=team, changes={"i": i, "who": "ü"})
        for i in range(3)
    ]
    for event in made:  # the second and third use the statement compiled by the first
        insert.insert(event)
    created = AuditEvent.objects.create(action="x.y", summary="orm", team=team, changes={"i": 9})

    for event in made:
        assert not event._state.adding
        stored = AuditEvent.objects.get(pk=event.pk)
        assert (stored.summary, stored.changes, stored.team_id) == (
            event.summary,
            event.changes,
            team.pk,
        )
        assert stored.created == event.created
    # Read back through the ORM like a row create() wrote: the same types come back.
    assert type(AuditEvent.objects.get(pk=made[0].pk).changes) is type(
        AuditEvent.objects.get(pk=created.pk).changes
    )


def test_an_insert_lets_the_database_number_an_auto_field_and_raises_on_conflicts():
    from django.contrib.auth.models import Group
    from django.db import IntegrityError, transaction

    from tasks_app.lib.compiled_reads import CompiledInsert

    insert = CompiledInsert(Group)
    insert.insert(Group(name="one"))
    insert.insert(Group(name="two"))
    assert sorted(Group.objects.values_list("name", flat=True)) == ["one", "two"]
    assert len(set(Group.objects.values_list("id", flat=True))) == 2
    with pytest.raises(IntegrityError), transaction.atomic():
        insert.insert(Group(name="one"))
    assert Group.objects.count() == 2


def test_an_insert_refuses_another_model():
    from django.contrib.auth.models import Group

    from tasks_app.lib.compiled_reads import CompiledInsert
    from tasks_app.models import AuditEvent

    with pytest.raises(TypeError):
        CompiledInsert(Group).insert(AuditEvent(action="x"))
