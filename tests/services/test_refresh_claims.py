"""Claims of the scheduled refresh (issue 14): whole credential groups, never split, one AWS
call per group however large, at most what the fleet's rate allows per tick."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tasks_app.models import Credential, Job, Plan, Role, TaskConfig, TaskRun, Variable
from tasks_app.services import claims, refresh
from tasks_app.tasks import refresh_group as refresh_group_task
from tests.factories import make_connector, make_team

pytestmark = pytest.mark.django_db

DUE = "2000-01-01T00:00:00Z"


@pytest.fixture
def fleet():
    """Team Platform: two connectors; plan WEB-BUILD with one job per task made by add()."""
    team = make_team("Platform", alice=Role.EDITOR)
    plan = Plan.objects.create(team=team, key="WEB-BUILD", name="Web")
    connectors = [make_connector(team, name=f"c{i}") for i in range(2)]
    jobs = iter(range(10_000))

    def add(count, *, connector=0, region="eu-west-1", due=DUE, **fields):
        made = [
            TaskConfig(
                job=Job.objects.create(plan=plan, key=f"JOB{next(jobs)}", name="Job"),
                region=region,
                connector=connectors[connector] if connector is not None else None,
                refresh_due_at=due,
                **fields,
            )
            for _ in range(count)
        ]
        return TaskConfig.objects.bulk_create(made)

    add.team, add.plan, add.connectors = team, plan, connectors
    return add


def _held(claim):
    return sorted(claims.claimed_task_ids(claim_id=claim.id))


def _ecr_calls(aws_calls):
    return [c for c in aws_calls if c["operation"] == "api.ecr:GetAuthorizationToken"]


def test_it_claims_each_group_whole_however_few_tasks_a_tick_may_take(fleet, monkeypatch):
    monkeypatch.setattr(claims, "CLAIM_BATCH", 3)
    first = fleet(5, due="2000-01-01T00:00:00Z")
    second = fleet(5, region="us-east-1", due="2000-01-02T00:00:00Z")

    (claim,) = claims.refresh_claim()  # 5 tasks: over the batch, never split
    assert _held(claim) == sorted(t.id for t in first)
    (claim,) = claims.refresh_claim()
    assert _held(claim) == sorted(t.id for t in second)
    assert claims.refresh_claim() == []


def test_a_tick_claims_no_more_groups_than_the_rate_allows_until_the_next_two(fleet, settings):
    settings.AWS_CALL_RATE = 1
    settings.REFRESH_TICK = 1  # two calls' worth per tick
    for connector in (0, 1):
        for region in ("eu-west-1", "us-east-1"):
            fleet(2, connector=connector, region=region)

    first = claims.refresh_claim()
    assert len(first) == 2
    assert claims.refresh_claim() == []  # two are still queued
    TaskConfig.objects.filter(claim=first[0].id).update(
        lease_until=None, claim=None, refresh_due_at=timezone.now() + timedelta(hours=6)
    )
    assert len(claims.refresh_claim()) == 1  # one slot is free again

    settings.AWS_CALL_RATE = 0  # no rate: no limit
    assert len(claims.refresh_claim()) == 1
    assert TaskConfig.objects.filter(claim=None).count() == 2  # the refreshed group


def test_the_oldest_due_group_goes_first(fleet, settings):
    settings.AWS_CALL_RATE = 0.5
    settings.REFRESH_TICK = 1  # one call per tick
    fleet(1, region="us-east-1", due="2000-01-03T00:00:00Z")
    older = fleet(1, region="eu-west-1", due="2000-01-02T00:00:00Z")
    (claim,) = claims.refresh_claim()
    assert _held(claim) == [older[0].id]


def test_a_group_larger_than_a_part_takes_one_call_and_one_refresh_time(
    fleet, monkeypatch, aws_endpoint, ecr_expiry, aws_calls
):
    monkeypatch.setattr(refresh, "PART", 4)
    tasks = fleet(10)
    (claim,) = claims.refresh_claim()
    assert refresh.refresh_group(claim_id=claim.id) == 10

    assert len(_ecr_calls(aws_calls)) == 1
    (credential,) = Credential.objects.all()
    assert TaskConfig.objects.filter(credential=credential).count() == 10
    assert TaskRun.objects.filter(outcome="succeeded").count() == 10
    refreshed = TaskConfig.objects.filter(pk__in=[t.pk for t in tasks])
    assert len(set(refreshed.values_list("refresh_due_at", flat=True))) == 1
    assert set(refreshed.values_list("claim", "lease_until")) == {(None, None)}


def test_the_queries_of_a_group_do_not_grow_with_its_tasks(fleet, aws_endpoint, ecr_expiry):
    def queries(count, region) -> int:
        fleet(count, region=region)
        (claim,) = claims.refresh_claim()
        with CaptureQueriesContext(connection) as captured:
            assert refresh.refresh_group(claim_id=claim.id) == count
        return len(captured)

    queries(1, "us-west-2")  # the first call stores the pace's row
    assert queries(4, "eu-west-1") == queries(40, "us-east-1")


def test_tasks_that_take_their_region_from_a_variable_join_its_group(
    fleet, aws_endpoint, ecr_expiry, aws_calls
):
    variable = Variable(team=fleet.team, plan=fleet.plan, key="aws.region")
    variable.set_value("eu-west-1")
    variable.save()
    static = fleet(2)
    variable_task = fleet(1, region="", region_variable="${bamboo.aws.region}")
    (claim,) = claims.refresh_claim()
    assert _held(claim) == sorted(t.id for t in [*static, *variable_task])
    assert refresh.refresh_group(claim_id=claim.id) == 3
    assert len(_ecr_calls(aws_calls)) == 1


def test_a_task_with_variables_is_resolved_once_per_refresh(
    fleet, aws_endpoint, ecr_expiry, aws_calls, monkeypatch
):
    """The claim reads the variables to place the tasks in their group (once per plan);
    the run resolves each task once: one principal, one variables read per plan."""
    from tasks_app.services import run_inputs

    for key, value in (("aws.region", "eu-west-1"), ("aws.connector", fleet.connectors[1].pk)):
        variable = Variable(team=fleet.team, plan=fleet.plan, key=key)
        variable.set_value(str(value))
        variable.save()
    tasks = fleet(
        3,
        connector=None,
        region="",
        region_variable="${bamboo.aws.region}",
        connector_variable="${bamboo.aws.connector}",
    )
    resolved, principals, reads = [], [], []
    for module, name, seen in (
        (refresh, "task_resolve", resolved),
        (run_inputs, "principal_for", principals),
        (run_inputs.References, "__init__", reads),
    ):
        real = getattr(module, name)

        def spy(*args, real=real, seen=seen, **kwargs):
            seen.append(kwargs.get("task"))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    (claim,) = claims.refresh_claim()
    assert (len(resolved), len(principals), len(reads)) == (0, 0, 1)
    assert refresh.refresh_group(claim_id=claim.id) == 3
    assert sorted(task.pk for task in resolved) == sorted(task.pk for task in tasks)
    assert (len(principals), len(reads)) == (1, 2)  # the claim's read, the run's read
    assert len(_ecr_calls(aws_calls)) == 1


def test_a_task_whose_variable_cannot_be_resolved_fails_at_the_claim(fleet, aws_calls):
    (task,) = fleet(1, region="", region_variable="${bamboo.aws.nowhere}")
    assert claims.refresh_claim() == []
    run = TaskRun.objects.get(task=task)
    assert (run.trigger, run.outcome, run.error_class) == (
        "schedule",
        "failed",
        "UndefinedRegionVariable",
    )
    task.refresh_from_db()
    assert task.refresh_due_at > timezone.now()  # backs off
    assert claims.refresh_claim() == []
    assert aws_calls == []


def test_a_message_queued_before_claims_is_dropped(fleet, aws_calls):
    (task,) = fleet(1)
    refresh_group_task([str(task.id)])  # the shape of an older version's message
    assert not TaskRun.objects.exists()
    assert aws_calls == []


def test_disabled_and_leased_tasks_stay_out_of_a_claim(fleet):
    on, off, held = fleet(3)
    TaskConfig.objects.filter(pk=off.pk).update(enabled=False)
    TaskConfig.objects.filter(pk=held.pk).update(lease_until=timezone.now() + timedelta(minutes=5))
    (claim,) = claims.refresh_claim()
    assert _held(claim) == [on.id]


def test_a_released_claim_is_claimed_again_at_once(fleet):
    tasks = fleet(2)
    (claim,) = claims.refresh_claim()
    assert claims.claim_release(claim_id=claim.id) == 2
    (again,) = claims.refresh_claim()
    assert _held(again) == sorted(t.id for t in tasks)
    assert again.id != claim.id


def test_an_idle_tick_reads_only_the_first_due_time(fleet):
    fleet(3, due=timezone.now() + timedelta(hours=6))
    fleet(2, due=DUE, enabled=False)  # a disabled task's old due time does not count
    with CaptureQueriesContext(connection) as queries:
        assert claims.refresh_claim() == []
    (query,) = queries.captured_queries  # no lock, no grouping: the first due time only
    assert "ORDER BY" in query["sql"]
    assert "LIMIT 1" in query["sql"]


def test_a_due_task_behind_future_ones_is_still_claimed(fleet):
    fleet(3, due=timezone.now() + timedelta(hours=6))
    (due,) = fleet(1, region="us-east-1")
    (claim,) = claims.refresh_claim()
    assert _held(claim) == [due.id]
