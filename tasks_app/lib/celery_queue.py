"""The Celery tasks services queue, looked up by name in the Celery app, and the one remote
control command the portal adds to its workers.

Services queue work; tasks_app/tasks.py calls services. Naming the tasks here, rather
than importing that module, keeps the two from importing each other.
"""

import logging
from dataclasses import dataclass

from celery import Task

from ecrportal.celery import app

logger = logging.getLogger(__name__)

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


def queue_depths() -> dict[str, int] | None:
    """Messages waiting in each of the portal's queues (CELERY_TASK_QUEUES), those a
    worker holds apart; None when the broker does not answer.

    Through kombu's own queue declaration (what a worker does when it starts, so it
    changes nothing), which counts a queue's messages on every transport: Redis' lists,
    priorities included, and the filesystem broker's files. One connection, tried once.
    """
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
            channel = connection.default_channel
            return {
                queue.name: channel.queue_declare(
                    queue=queue.name, durable=queue.durable, auto_delete=queue.auto_delete
                ).message_count
                for queue in app.conf.task_queues
            }
    except Exception as e:  # any broker failure: no depth to tell (the scrape goes on)
        logger.warning(
            "The broker did not answer for the queue depths: %s: %s", type(e).__name__, e
        )
        return None


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
