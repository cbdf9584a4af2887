import uuid

from django.core.management.base import CommandError

from tasks_app.models import TaskConfig


def task_from_argument(value: str) -> TaskConfig:
    try:
        task_id = uuid.UUID(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a task ID (a UUID from the task's page).") from None
    task = TaskConfig.objects.select_related("job__plan__team").filter(id=task_id).first()
    if task is None:
        raise CommandError(f"No task has the ID {task_id}.")
    return task
