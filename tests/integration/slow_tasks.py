"""A task that only sleeps, to keep a real worker busy (loaded into it with --include)."""

import time

from celery import shared_task

SLEEP = "tests.sleep"
INCLUDE = ("--include", __name__)


@shared_task(name=SLEEP, ignore_result=True)
def sleep(seconds: float) -> None:
    time.sleep(seconds)


def queue_sleeps(broker_url: str, *, count: int, seconds: float) -> None:
    """Queue `count` sleeps on the default queue, where refreshes wait."""
    from ecrportal.celery import app

    with app.connection_for_write(broker_url) as connection:
        for _ in range(count):
            app.send_task(SLEEP, args=[seconds], connection=connection)
