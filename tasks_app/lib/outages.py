"""Outages of what the portal stands on: the database and the message broker.

One home for "is this error an outage, of what, and when to try again", read by the web's
error answers (503 with Retry-After, one log line, no traceback), by the log filter that
keeps those lines short, and by the worker's refresh, which retries with back-off instead
of sitting on its claim until the lease runs out.

An outage is an error the caller did not cause and that passes by itself: the database
refused or lost the connection (OperationalError, InterfaceError: a restart, a killed
backend, a failover, a lock or statement timeout) or the broker could not be reached.
"""

import logging

from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from kombu.exceptions import OperationalError as BrokerOperationalError

DATABASE_OUTAGES = (DatabaseOperationalError, DatabaseInterfaceError)
OUTAGES = (*DATABASE_OUTAGES, BrokerOperationalError)

# What a client is told to wait before it asks again (the Retry-After header).
RETRY_AFTER_SECONDS = 5
# A worker's back-off after an outage: 1, 2, 4, 8, 16, then every 30 s, so a refresh
# waits at most RETRY_DELAY_MAX seconds after the database returns.
RETRY_DELAY_MAX = 30


def outage_of(error: BaseException | None) -> str | None:
    """What is down if `error` is an outage ("the database", "the message broker")."""
    if isinstance(error, DATABASE_OUTAGES):
        return "the database"
    if isinstance(error, BrokerOperationalError):
        return "the message broker"
    return None


def outage_detail(component: str) -> str:
    """The words a person or client reads while `component` is down."""
    return (
        f"The portal cannot reach {component} right now; "
        f"try again in {RETRY_AFTER_SECONDS} seconds."
    )


def outage_summary(error: BaseException) -> str:
    """One line for the log: the error's class and the first line of its text."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def retry_delay(attempt: int) -> int:
    """Seconds before retry number `attempt` + 1 (0-based): doubling, capped."""
    return min(RETRY_DELAY_MAX, 2 ** min(attempt, 10))


class OutageLogFilter(logging.Filter):
    """Makes a request that failed on an outage one log line: what is down and why,
    without the traceback (the error is the service's, not a bug of the portal).
    Attached to the django.request logger, which logs each failed request once."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        component = outage_of(error)
        if component is None or error is None:
            return True
        # Formatted here, once: with no arguments left, a % in the error's text is text.
        summary = outage_summary(error)
        record.msg = f"{record.getMessage()} ({component} is unavailable: {summary})"
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True
