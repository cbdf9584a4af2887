"""The Celery tasks services queue, looked up by name in the Celery app.

Services queue work; tasks_app/tasks.py calls services. Naming the tasks here, rather
than importing that module, keeps the two from importing each other.
"""

from celery import Task

from ecrportal.celery import app

CANARY = "tasks_app.tasks.canary"
REFRESH_GROUP = "tasks_app.tasks.refresh_group"
NOTIFICATION_SEND = "tasks_app.tasks.notification_send"
INVITATION_SEND = "tasks_app.tasks.invitation_send"


def celery_task(name: str) -> Task:
    """The registered task (the same object as in tasks_app/tasks.py). Processes that are
    not workers (gunicorn, manage.py) load the task modules on first use, as workers do."""
    if name not in app.tasks:
        app.loader.import_default_modules()
    return app.tasks[name]
