from django.core.management.base import BaseCommand, CommandError

from tasks_app.formats.snippets import SHELLS, env_snippet
from tasks_app.identity.actor import COMMAND_LINE
from tasks_app.management.arguments import task_from_argument
from tasks_app.services.delivery import NotServable, record_read, task_delivery


class Command(BaseCommand):
    help = (
        "Print a task's variables as environment assignments for a shell, e.g. "
        'eval "$(manage.py task_env <task-id> --shell bash)". Expired or never '
        "fetched credentials are an error, never printed."
    )

    def add_arguments(self, parser):
        parser.add_argument("task_id", help="The task's ID, as shown on its page.")
        parser.add_argument("--shell", choices=SHELLS, default="bash")

    def handle(self, *args, task_id, shell, **options):
        task = task_from_argument(task_id)
        try:
            delivery = task_delivery(task)
        except NotServable as e:
            raise CommandError(e.detail) from None
        record_read(
            actor=COMMAND_LINE,
            task=task,
            summary=f"Read the variables of \u201c{task}\u201d with manage.py task_env",
            team=task.job.plan.team,
        )
        self.stdout.write(env_snippet(shell, delivery.values), ending="")
