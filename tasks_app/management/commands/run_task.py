from django.core.management.base import BaseCommand, CommandError

from tasks_app.identity.actor import COMMAND_LINE
from tasks_app.management.arguments import task_from_argument
from tasks_app.models import TaskRun
from tasks_app.services.runs import TaskDisabled, task_run


class Command(BaseCommand):
    help = "Run an Amazon ECR credentials task now and print the outcome."

    def add_arguments(self, parser):
        parser.add_argument("task_id", help="The task's ID, as shown on its page.")

    def handle(self, *args, task_id, **options):
        task = task_from_argument(task_id)
        try:
            run = task_run(task=task, trigger=TaskRun.Trigger.MANUAL, actor=COMMAND_LINE)
        except TaskDisabled as e:
            raise CommandError(e.message) from None
        if run.outcome != TaskRun.Outcome.SUCCEEDED:
            raise CommandError(f"The run failed ({run.error_class}): {run.error_message}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Fetched credentials for \u201c{task}\u201d in {run.region}; they expire "
                f"{run.token_expires_at:%Y-%m-%dT%H:%M:%SZ}."
            )
        )
