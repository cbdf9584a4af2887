"""Running an Amazon ECR credentials task (SPEC §4.2) and writing its variables (§5)."""

import base64
import json
import random
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.timezone import now

from tasks_app import aws
from tasks_app.connector_rules import ROLE_ARN, host_credentials_available
from tasks_app.crypto import MASK, EncryptionError
from tasks_app.models import (
    Connector,
    TaskConfig,
    TaskRun,
    Variable,
    VariableResult,
    is_masked_key,
)
from tasks_app.services.audit import audit_record
from tasks_app.services.connectors import principal_for
from tasks_app.services.status import status_record, statuses_record
from tasks_app.task_rules import (
    HOST_NOT_ALLOWED,
    NOT_SHARED,
    connector_refusal,
    connectors_shared_with,
    ecr_regions,
    host_not_allowed_message,
    reference_key,
)


class RunError(Exception):
    """The task cannot run as configured; the message is meant for people."""

    def __init__(self, message: str, error_class: str):
        super().__init__(message)
        self.message = message
        self.error_class = error_class


class TaskDisabled(RunError):
    def __init__(self, task):
        super().__init__(
            f"The task \u201c{task}\u201d is disabled; it never runs.", "TaskDisabled"
        )


@dataclass(frozen=True)
class Resolved:
    region: str
    connector: Connector | None
    principal: aws.Principal


def input_variables(plan) -> dict[str, Variable]:
    """The plan's input variables: the team's global ones, overridden by the plan's own."""
    variables = {v.key: v for v in Variable.objects.filter(team_id=plan.team_id, plan=None)}
    variables.update({v.key: v for v in Variable.objects.filter(plan=plan)})
    return variables


class _Lookup:
    """Resolves ${bamboo.<key>} references against the plan's input variables, once."""

    def __init__(self, plan):
        self.plan = plan
        self._variables = None

    def __call__(self, reference: str, what: str) -> tuple[str, str]:
        """(value, value as it may be shown in a message)."""
        if self._variables is None:
            self._variables = input_variables(self.plan)
        variable = self._variables.get(reference_key(reference))
        if variable is None:
            raise RunError(
                f"The {what} variable {reference} is not defined: neither plan "
                f"{self.plan.key} nor team {self.plan.team.name} has a variable "
                f"{reference_key(reference)}.",
                f"Undefined{what.title()}Variable",
            )
        value = variable.plain_value().strip()
        return value, (MASK if variable.masked else repr(value))


def _refusal(team, connector, memo: dict) -> str | None:
    key = ("refusal", team.pk, connector.pk)
    if key not in memo:
        memo[key] = connector_refusal(team, connector)
    return memo[key]


def _principal(connector, memo: dict) -> aws.Principal:
    key = ("principal", connector.pk)
    if key not in memo:
        memo[key] = principal_for(connector)
    return memo[key]


def _resolve(task: TaskConfig, *, trigger: str, memo: dict | None = None) -> Resolved:
    """Region, connector and principal of a run. `memo` shares lookups between the
    tasks of one refresh group (they share team, connector and region)."""
    memo = {} if memo is None else memo
    plan = task.job.plan
    lookup = _Lookup(plan)

    if task.credentials_source == TaskConfig.Source.CONNECTOR:
        connector = task.connector
        if connector is None:
            value, shown = lookup(task.connector_variable, "connector")
            try:
                connector_id = uuid.UUID(value)
            except ValueError:
                connector_id = None
            connector = (
                connectors_shared_with(plan.team).filter(pk=connector_id).first()
                if connector_id
                else None
            )
            if connector is None:
                raise RunError(
                    f"The connector variable {task.connector_variable} is {shown}, which is "
                    f"not the ID of a connector that team {plan.team.name} may use (such as "
                    "f24e81bc-7aff-42db-86a2-7cf82e24d871).",
                    "InvalidConnectorVariable",
                )
        refusal = _refusal(plan.team, connector, memo)
        if refusal == HOST_NOT_ALLOWED:
            raise RunError(host_not_allowed_message(plan.team, connector), refusal)
        if refusal == NOT_SHARED:
            raise RunError(
                f"Team {plan.team.name} may no longer use connector {connector.name}: "
                "its owner stopped sharing it. Choose another connector.",
                refusal,
            )
        if trigger != TaskRun.Trigger.MANUAL and not connector.unattended_use:
            raise RunError(
                f"Connector {connector.name} does not allow unattended use "
                "(scheduled refreshes and API calls).",
                "UnattendedUseNotAllowed",
            )
        principal = _principal(connector, memo)
        partition = connector.partition
    else:
        if not host_credentials_available(plan.team):
            raise RunError(
                f"The portal host's own role is not available to team {plan.team.name}.",
                "HostCredentialsNotAllowed",
            )
        connector = None
        match = ROLE_ARN.match(task.role_arn) if task.role_arn else None
        partition = match["partition"] if match else None
        principal = aws.Principal(
            credentials="host",
            principal_type="assumed_role" if task.role_arn else "provided",
            role_arn=task.role_arn,
            duration=3600 if task.role_arn else None,
            partition=partition or "aws",
        )

    if task.region_variable:
        region, shown = lookup(task.region_variable, "region")
        if region not in ecr_regions(partition):
            where = f" of partition {partition}" if partition else ""
            raise RunError(
                f"The region variable {task.region_variable} is {shown}, which is not a "
                f"region code{where} where Amazon ECR exists (such as ap-southeast-2).",
                "InvalidRegionVariable",
            )
    else:
        region = task.region
        if partition and region not in ecr_regions(partition):
            raise RunError(
                f"Region {region} is not in partition {partition} of the credentials.",
                "RegionNotInPartition",
            )
    return Resolved(region=region, connector=connector, principal=principal)


def generated_variables(namespace: str, authorization: aws.EcrAuthorization) -> dict[str, str]:
    """The seven variables of SPEC §5, in the reference document's order."""
    token = authorization.token
    username, _, password = base64.b64decode(token).decode().partition(":")
    endpoint = authorization.proxy_endpoint
    fields = {
        "authorizationToken": token,
        "expirationDate": authorization.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "proxyEndpoint": endpoint,
        "proxyEndpointDomain": urlsplit(endpoint).netloc or endpoint,
        "username": username,
        "password": password,
    }
    ns = namespace
    return {
        f"{ns}.ecr.authorizationToken.password": fields["authorizationToken"],
        f"{ns}.ecr.expirationDate": fields["expirationDate"],
        f"{ns}.ecr.proxyEndpoint": fields["proxyEndpoint"],
        f"{ns}.ecr.proxyEndpointDomain": fields["proxyEndpointDomain"],
        f"{ns}.ecr.username": fields["username"],
        f"{ns}.ecr.password": fields["password"],
        f"{ns}.ecr.json.password": json.dumps(fields),
    }


def _results(task: TaskConfig, run: TaskRun, values: dict[str, str], expires_at, stamp):
    return [
        VariableResult(
            task=task,
            plan_id=task.job.plan_id,
            job_id=task.job_id,
            run=run,
            key=key,
            value="" if is_masked_key(key) else value,
            secret_value=value if is_masked_key(key) else "",
            masked=is_masked_key(key),
            scope=task.scope,
            expires_at=expires_at,
            updated=stamp,
        )
        for key, value in values.items()
    ]


def next_refresh(*, expires_at, at):
    """When a token that expires at expires_at should be refreshed (SPEC §7).

    MIN_REMAINING (plus up to REFRESH_JITTER, to spread the load) before expiry.
    Tokens shorter than that are refreshed halfway to expiry, not in a loop.
    """
    jitter = random.uniform(0, settings.REFRESH_JITTER)  # noqa: S311 - not for secrets
    due = expires_at - timedelta(seconds=settings.MIN_REMAINING + jitter)
    if due <= at:  # the token is shorter than MIN_REMAINING: halfway, not at once
        due = at + (expires_at - at) / 2
    return due


def backoff(failures: int) -> timedelta:
    """Exponential, with jitter, capped: 1 failure ~BASE, 2 ~2*BASE, ... at most CAP."""
    ceiling = min(settings.BACKOFF_CAP, settings.BACKOFF_BASE * 2 ** (max(failures, 1) - 1))
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))  # noqa: S311


def _finish(run: TaskRun, *, error_class: str, message: str, request_id: str = "") -> None:
    """Record a failed run, and the task's state: back off, keep its variables."""
    finished = now()
    run_fields = {
        "finished": finished,
        "outcome": TaskRun.Outcome.FAILED,
        "region": run.region,
        "connector": run.connector,
        "error_class": error_class,
        "error_message": message,
        "aws_request_id": request_id,
        "token_expires_at": None,
    }
    TaskRun.objects.filter(pk=run.pk).update(**run_fields)
    for name, value in run_fields.items():
        setattr(run, name, value)
    tasks = TaskConfig.objects.filter(pk=run.task_id)
    with transaction.atomic():
        tasks.update(
            last_run_at=finished,
            last_run_ok=False,
            last_error=message[:1000],
            lease_until=None,
            failures=F("failures") + 1,
        )
        failures = tasks.values_list("failures", flat=True).first()
        if failures is None:  # the task was deleted meanwhile
            return
        tasks.update(refresh_due_at=finished + backoff(failures))
        status_record(task_id=run.task_id, run=run, at=finished)


def runs_interrupted_close(*, at=None) -> int:
    """Mark as failed the runs whose worker died before finishing (killed, restarted).

    Their tasks are refreshed again when the claim runs out; this only tidies the
    history. A run may last at most the task time limit.
    """
    at = at or now()
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    return TaskRun.objects.filter(outcome=TaskRun.Outcome.RUNNING, started__lt=at - limit).update(
        outcome=TaskRun.Outcome.FAILED,
        finished=at,
        error_class="Interrupted",
        error_message="The worker stopped before this run finished (killed or restarted). "
        "Nothing it fetched was written; the task is refreshed again.",
    )


def task_run(*, task: TaskConfig, trigger: str, actor=None, request=None) -> TaskRun:
    """Run the task now: resolve, obtain credentials, call ECR, write the variables.

    No database transaction is open during the AWS call. A failure of any
    kind leaves the task's previous variables as they were.
    """
    if not task.enabled:
        raise TaskDisabled(task)
    run = TaskRun.objects.create(task=task, trigger=trigger, actor=actor)
    if trigger != TaskRun.Trigger.SCHEDULE:
        audit_record(
            action="task.run",
            summary=f"Ran task \u201c{task}\u201d of {task.job}",
            request=request,
            actor=actor,
            team=task.job.plan.team,
            obj=task,
            changes={"trigger": trigger, "run": str(run.id)},
        )
    caller = aws.session_name(actor.get_username() if actor else None)
    try:
        resolved = _resolve(task, trigger=trigger)
        run.region, run.connector = resolved.region, resolved.connector
        authorization = aws.ecr_authorization(
            resolved.principal,
            caller=caller,
            region=resolved.region,
            registry_id=task.registry_id or None,
        )
    except (RunError, aws.AwsError, EncryptionError) as e:
        _fail(run, e)
        return run
    except Exception as e:
        _finish(run, error_class=type(e).__name__, message="Internal error; see logs.")
        raise
    _deliver(task, run, authorization)
    return run


def _fail(run: TaskRun, error: Exception) -> None:
    """Record a run that could not obtain credentials; the variables stay as they were."""
    if isinstance(error, RunError):
        _finish(run, error_class=error.error_class, message=error.message)
    elif isinstance(error, aws.AwsError):
        _finish(
            run,
            error_class=error.code,
            message=error.explanation,
            request_id=error.request_id,
        )
    else:
        _finish(run, error_class=type(error).__name__, message=str(error))


RUN_FIELDS = [
    "finished",
    "outcome",
    "region",
    "connector",
    "error_class",
    "error_message",
    "aws_request_id",
    "token_expires_at",
]
TASK_FIELDS = [
    "last_run_at",
    "last_run_ok",
    "last_error",
    "lease_until",
    "expires_at",
    "failures",
    "refresh_due_at",
]


def _deliver(task: TaskConfig, run: TaskRun, authorization: aws.EcrAuthorization) -> None:
    _deliver_many([(task, run, authorization)])


def _update_each(model, objects, fields: list[str]) -> None:
    """Save these fields of each object, with one UPDATE per distinct set of values.

    The tasks of a refresh group share their values, so this is one statement
    where bulk_update would build a CASE per object and field.
    """
    same = defaultdict(list)
    for obj in objects:
        same[
            tuple(getattr(obj, f"{name}_id", None) or getattr(obj, name) for name in fields)
        ].append(obj.pk)
    for values, ids in same.items():
        columns = [model._meta.get_field(name).attname for name in fields]
        model.objects.filter(pk__in=ids).update(**dict(zip(columns, values, strict=True)))


def _deliver_many(members: list[tuple[TaskConfig, TaskRun, aws.EcrAuthorization]]) -> None:
    """Write the variables of runs that obtained credentials and finish them, in one
    transaction: every task gets all seven new variables, or none does.

    Tasks served by one token get one refresh time (with one jitter), so they stay
    one group, refreshed with one AWS call, next time too.
    """
    finished = now()
    results = []
    for task, run, authorization in members:
        values = generated_variables(task.namespace, authorization)
        results += _results(task, run, values, authorization.expires_at, finished)
        run.finished, run.outcome = finished, TaskRun.Outcome.SUCCEEDED
        run.error_class = run.error_message = ""
        run.aws_request_id = authorization.request_id
        run.token_expires_at = authorization.expires_at
    ids = [task.pk for task, _, _ in members]
    due = {}
    with transaction.atomic():
        # Lock the rows first (PostgreSQL): failures counts on from the latest value.
        failures = dict(
            TaskConfig.objects.select_for_update().filter(pk__in=ids).values_list("id", "failures")
        )
        members = [m for m in members if m[0].pk in failures]  # deleted meanwhile
        if not members:
            return
        for task, _, authorization in members:
            expires = authorization.expires_at
            task.last_run_at, task.last_run_ok, task.lease_until = finished, True, None
            task.expires_at = expires
            if expires > finished:
                task.failures, task.last_error = 0, ""
                if expires not in due:
                    due[expires] = next_refresh(expires_at=expires, at=finished)
                task.refresh_due_at = due[expires]
            else:  # a token that arrived expired already: retry later, never at once
                task.failures = failures[task.pk] + 1
                task.last_error = (
                    f"AWS returned a token that expired already ({expires:%Y-%m-%dT%H:%M:%SZ}); "
                    "check the clocks. Retrying with back-off."
                )
                task.refresh_due_at = finished + backoff(task.failures)
        VariableResult.objects.filter(task__in=[m[0].pk for m in members]).delete()
        VariableResult.objects.bulk_create([r for r in results if r.task_id in failures])
        _update_each(TaskRun, [run for _, run, _ in members], RUN_FIELDS)
        _update_each(TaskConfig, [task for task, _, _ in members], TASK_FIELDS)
        statuses_record(
            task_ids=[task.pk for task, _, _ in members],
            runs={task.pk: run for task, run, _ in members},
            at=finished,
        )
