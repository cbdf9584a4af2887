"""The Celery tasks services queue, looked up by name in the Celery app, and the one remote
control command the portal adds to its workers.

Services queue work; tasks_app/tasks.py calls services. Naming the tasks here, rather
than importing that module, keeps the two from importing each other.
"""

from dataclasses import dataclass

from celery import Task

from ecrportal.celery import app

CANARY = "tasks_app.tasks.canary"
REFRESH_GROUP = "tasks_app.tasks.refresh_group"
NOTIFICATION_SEND = "tasks_app.tasks.notification_send"
INVITATION_SEND = "tasks_app.tasks.invitation_send"
# The remote control command a worker answers with its processes and how many are inside a
# task (registered in tasks_app/tasks.py). The worker's consumer answers it, not its pool.
POOL_LOAD = "pool_load"


def celery_task(name: str) -> Task:
    """The registered task (the same object as in tasks_app/tasks.py). Processes that are
    not workers (gunicorn, manage.py) load the task modules on first use, as workers do."""
    if name not in app.tasks:
        app.loader.import_default_modules()
    return app.tasks[name]


@dataclass(frozen=True)
class PoolLoad:
    """A worker's answer to POOL_LOAD."""

    worker: str
    processes: int
    busy: int

    @property
    def full(self) -> bool:
        return 0 < self.processes <= self.busy


def workers_load(*, timeout: float) -> list[PoolLoad]:
    """Every worker that answers POOL_LOAD within `timeout` seconds (the whole wait: the
    number of workers is not known). Raises what the broker raises."""
    replies = app.control.broadcast(POOL_LOAD, reply=True, timeout=timeout)
    return [
        PoolLoad(worker=worker, processes=int(load["processes"]), busy=int(load["busy"]))
        for reply in replies or ()
        for worker, load in reply.items()
        if isinstance(load, dict) and {"processes", "busy"} <= load.keys()
    ]
