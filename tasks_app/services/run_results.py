"""The outcome of runs: for those that obtained credentials, one credential stored for all
the tasks the AWS answer serves, all or none (SPEC §5); for those that did not, the
failure, with back-off (SPEC §7). Status changes are recorded with them, and their
notifications queued.
"""

from collections import defaultdict
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils.timezone import now

from tasks_app.lib import aws, metrics
from tasks_app.lib.crypto import EncryptionError
from tasks_app.models import Credential, TaskConfig, TaskRun
from tasks_app.rules.refresh_schedule import backoff, next_refresh
from tasks_app.services.notifications import notifications_queue
from tasks_app.services.run_inputs import RunError
from tasks_app.services.status import STATE_COLUMNS, TaskState, status_changes_record


def run_record_failure(
    *,
    run: TaskRun,
    error_class: str,
    message: str,
    request_id: str = "",
    answer: str = "",
    cause: str = "other",
) -> None:
    """Record a failed run, and the task's state: back off, keep its variables.

    ``message`` is what people read (the task, its status changes, notifications);
    ``answer`` what answered, raw, kept in the run's details only; ``cause`` the metrics'
    label of bounded cardinality (``run_fail`` names it)."""
    metrics.refresh_counted(ok=False, cause=cause)
    finished = now()
    run_fields = {
        "finished": finished,
        "outcome": TaskRun.Outcome.FAILED,
        "region": run.region,
        "connector": run.connector,
        "error_class": error_class,
        "error_message": message,
        "aws_request_id": request_id,
        "aws_answer": answer,
        "token_expires_at": None,
    }
    TaskRun.objects.filter(pk=run.pk).update(**run_fields)
    for name, value in run_fields.items():
        setattr(run, name, value)
    tasks = TaskConfig.objects.filter(pk=run.task_id)
    with transaction.atomic():
        # The update locks the row (PostgreSQL; SQLite: the database) before it is read.
        tasks.update(
            last_run_at=finished,
            last_run_ok=False,
            last_error=message[:1000],
            lease_until=None,
            claim=None,
            failures=F("failures") + 1,
        )
        row = tasks.values_list("failures", "enabled", *STATE_COLUMNS).first()
        if row is None:  # the task was deleted meanwhile
            return
        failures, enabled, state = row[0], row[1], TaskState(*row[2:])
        tasks.update(refresh_due_at=finished + backoff(failures))
        if not enabled:
            return
        changes = status_changes_record(states=[state], runs={run.task_id: run}, at=finished)
        notifications_queue(changes=changes, tasks=_held([run]))


def runs_interrupted_close(*, at=None) -> int:
    """Mark as failed the runs whose worker died before finishing (killed, restarted).

    Their tasks are refreshed again when the claim runs out; this only tidies the
    history. A run may last at most the task time limit.
    """
    at = at or now()
    limit = timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 60)
    closed = TaskRun.objects.filter(
        outcome=TaskRun.Outcome.RUNNING, started__lt=at - limit
    ).update(
        outcome=TaskRun.Outcome.FAILED,
        finished=at,
        error_class="Interrupted",
        error_message="The worker stopped before this run finished (killed or restarted). "
        "Nothing it fetched was written; the task is refreshed again.",
    )
    if closed:
        metrics.refresh_counted(ok=False, cause="Interrupted", runs=closed)
    return closed


def runs_cut_off_close(*, task_ids) -> int:
    """Mark as failed the scheduled runs of these tasks that an outage cut off (the
    database or the broker went away mid-refresh), before their refresh is retried.

    Only the retry of the claim that holds these tasks calls this: no other worker can
    be running them, so every scheduled run of theirs still open is one it cut off."""
    return TaskRun.objects.filter(
        task_id__in=task_ids,
        outcome=TaskRun.Outcome.RUNNING,
        trigger=TaskRun.Trigger.SCHEDULE,
    ).update(
        outcome=TaskRun.Outcome.FAILED,
        finished=now(),
        error_class="Interrupted",
        error_message="The database or the message broker became unavailable during this "
        "run. Nothing it fetched was written; the refresh was retried.",
    )


def run_fail(*, run: TaskRun, error: RunError | aws.AwsError | EncryptionError) -> None:
    """Record a run that could not obtain credentials; the variables stay as they were."""
    if isinstance(error, RunError):
        run_record_failure(
            run=run, error_class=error.error_class, message=error.message, cause=error.error_class
        )
    elif isinstance(error, aws.AwsError):
        run_record_failure(
            run=run,
            error_class=error.code,
            message=error.explanation,
            request_id=error.request_id,
            answer=error.answer,
            cause=aws.cause_label(error.code),
        )
    else:
        name = type(error).__name__
        run_record_failure(run=run, error_class=name, message=str(error), cause=name)


RUN_FIELDS = [
    "finished",
    "outcome",
    "region",
    "connector",
    "error_class",
    "error_message",
    "aws_request_id",
    "aws_answer",
    "token_expires_at",
]
TASK_FIELDS = [
    "credential",
    "last_run_at",
    "last_run_ok",
    "last_error",
    "lease_until",
    "claim",
    "failures",
    "refresh_due_at",
]


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
    columns = [model._meta.get_field(name).attname for name in fields]
    for values, ids in same.items():
        model.objects.filter(pk__in=ids).update(**dict(zip(columns, values, strict=True)))


def credential_for(*, authorization: aws.EcrAuthorization, group: str) -> Credential:
    """One AWS answer as a credential for every task it serves, not saved yet: runs_deliver
    saves it (encrypted once) in the transaction of the first tasks it serves."""
    return Credential(
        group=group[:300],
        token=authorization.token,
        username=authorization.username,
        expires_at=authorization.expires_at,
        proxy_endpoint=authorization.proxy_endpoint,
        request_id=authorization.request_id,
        created=now(),
    )


def runs_deliver(*, credential: Credential, runs: list[tuple[TaskConfig, TaskRun]]) -> int:
    """Make the credential that of these tasks and finish their runs, in one transaction:
    every task of the part gets the new variables, or none does.

    Tasks served by one credential get one refresh time (one jitter, drawn from the
    credential), whichever part they are written in, so they stay one group, refreshed
    with one AWS call, next time too. Returns how many tasks were
    served (those deleted meanwhile are not).
    """
    finished = now()
    expires = credential.expires_at
    for _, run in runs:
        run.finished, run.outcome = finished, TaskRun.Outcome.SUCCEEDED
        run.error_class = run.error_message = ""
        run.aws_request_id = credential.request_id
        run.aws_answer = ""
        run.token_expires_at = expires
    ids = [task.pk for task, _ in runs]
    fresh = expires > finished
    due = next_refresh(expires_at=expires, at=credential.created, seed=credential.pk.int)
    with transaction.atomic():
        # Lock the rows first (PostgreSQL): failures counts on from the latest value, and
        # the credential settings are those the run fetched for.
        current = {
            row[0]: row[1:]
            for row in TaskConfig.objects.select_for_update()
            .filter(pk__in=ids)
            .values_list(
                "id", "failures", "enabled", "recorded_status", *TaskConfig.CREDENTIAL_SETTINGS
            )
        }
        failures = {pk: row[0] for pk, row in current.items()}
        changed = [
            run
            for task, run in runs
            if task.pk in current and current[task.pk][3:] != task.credential_settings()
        ]
        runs = [(task, run) for task, run in runs if task.pk in current and run not in changed]
        _runs_superseded(changed, finished)
        if not runs:
            return 0
        if credential._state.adding:
            credential.save(force_insert=True)
        for task, _ in runs:
            task.credential = credential
            task.last_run_at, task.last_run_ok = finished, True
            task.lease_until, task.claim = None, None
            if fresh:
                task.failures, task.last_error = 0, ""
                task.refresh_due_at = due
            else:  # a token that arrived expired already: retry later, never at once
                task.failures = failures[task.pk] + 1
                task.last_error = (
                    f"AWS returned a token that expired already ({expires:%Y-%m-%dT%H:%M:%SZ}); "
                    "check the clocks. Retrying with back-off."
                )
                task.refresh_due_at = finished + backoff(task.failures)
        _update_each(TaskRun, [run for _, run in runs], RUN_FIELDS)
        _update_each(TaskConfig, [task for task, _ in runs], TASK_FIELDS)
        # The status step works on what this transaction holds: the rows locked above.
        states = [
            TaskState(task.pk, expires, True, task.last_error, current[task.pk][2])
            for task, _ in runs
            if current[task.pk][1]  # enabled
        ]
        changes = status_changes_record(
            states=states, runs={task.pk: run for task, run in runs}, at=finished
        )
        notifications_queue(changes=changes, tasks=_held([run for _, run in runs]))
    metrics.refresh_counted(ok=True, runs=len(runs))
    return len(runs)


def _held(runs: list[TaskRun]) -> dict:
    """The tasks these runs hold already (with their plan and team), by ID."""
    return {run.task_id: run.task for run in runs if TaskRun.task.is_cached(run)}


def _runs_superseded(runs: list[TaskRun], finished) -> None:
    """Finish the runs of tasks whose credential settings changed while they ran: what they
    fetched is not written (the change dropped the task's credential and made it due)."""
    fields = {
        "finished": finished,
        "outcome": TaskRun.Outcome.FAILED,
        "error_class": "SettingsChanged",
        "error_message": "The task's settings changed while this run fetched credentials; "
        "nothing it fetched was written, and the task is refreshed with its new settings.",
        "token_expires_at": None,
    }
    for run in runs:
        for name, value in fields.items():
            setattr(run, name, value)
    if runs:
        TaskRun.objects.filter(pk__in=[run.pk for run in runs]).update(**fields)


def credentials_unused_delete() -> int:
    """Delete the credentials no task points at any more (replaced by a newer refresh)."""
    deleted, _ = Credential.objects.filter(tasks__isnull=True).delete()
    return deleted
