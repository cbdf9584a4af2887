"""Running an Amazon ECR credentials task now (SPEC §4.2): Run now, the API's run, the CLI.

The scheduled refresh (services/refresh.py) uses the same pieces for many tasks at once:
task_resolve, one AWS call per group, credential_for, runs_deliver and run_fail.
"""

from tasks_app.identity.actor import Actor
from tasks_app.lib import aws
from tasks_app.lib.crypto import EncryptionError
from tasks_app.lib.log_context import log_context
from tasks_app.models import TaskConfig, TaskRun
from tasks_app.services.audit import audit_record
from tasks_app.services.pacing import call_slot_take
from tasks_app.services.run_inputs import RunError, TaskDisabled, task_resolve
from tasks_app.services.run_results import (
    credential_for,
    run_fail,
    run_record_failure,
    runs_deliver,
)


def task_run(*, task: TaskConfig, trigger: str, actor: Actor) -> TaskRun:
    """Run the task now: resolve, obtain credentials, call ECR, write the variables.

    No database transaction is open during the AWS call. A failure of any
    kind leaves the task's previous variables as they were. Its log lines name the task.
    """
    with log_context(task=str(task.pk)):
        return _task_run(task=task, trigger=trigger, actor=actor)


def _task_run(*, task: TaskConfig, trigger: str, actor: Actor) -> TaskRun:
    if not task.enabled:
        raise TaskDisabled(task)
    scheduled = trigger == TaskRun.Trigger.SCHEDULE
    run = TaskRun.objects.create(
        task=task,
        trigger=trigger,
        actor=actor.user,
        actor_name="" if scheduled else actor.name[:150],
    )
    if not scheduled:
        audit_record(
            action="task.run",
            summary=f"Ran task \u201c{task}\u201d of {task.job}",
            actor=actor,
            team=task.job.plan.team,
            obj=task,
            changes={"trigger": trigger, "run": str(run.id)},
        )
    caller = aws.session_name(actor.user.get_username() if actor.user else None)
    try:
        resolved = task_resolve(task=task, trigger=trigger)
        run.region, run.connector = resolved.region, resolved.connector
        call_slot_take()  # counts towards the fleet's rate; a person does not wait for it
        authorization = aws.ecr_authorization(
            resolved.principal,
            caller=caller,
            region=resolved.region,
            registry_id=task.registry_id or None,
            public=resolved.public,
        )
    except (RunError, aws.AwsError, EncryptionError) as e:
        run_fail(run=run, error=e)
        return run
    except Exception as e:
        run_record_failure(
            run=run, error_class=type(e).__name__, message="Internal error; see logs."
        )
        raise
    credential = credential_for(authorization=authorization, group=resolved.group)
    runs_deliver(credential=credential, runs=[(task, run)])
    return run
