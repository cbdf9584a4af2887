"""What counts as an outage, what a client is told, how a worker backs off, and the one
log line a request that met an outage leaves (tasks_app/lib/outages.py)."""

import logging
import sys

from django.db import IntegrityError, InterfaceError, OperationalError
from kombu.exceptions import OperationalError as BrokerError

from tasks_app.lib.outages import (
    RETRY_DELAY_MAX,
    OutageLogFilter,
    outage_detail,
    outage_of,
    retry_delay,
)


def test_database_and_broker_failures_are_outages_and_bugs_are_not():
    assert outage_of(OperationalError("server closed the connection")) == "the database"
    assert outage_of(InterfaceError("connection already closed")) == "the database"
    assert outage_of(BrokerError("Error 111 connecting")) == "the message broker"
    assert outage_of(IntegrityError("duplicate key")) is None
    assert outage_of(ValueError("a bug")) is None
    assert outage_of(None) is None


def test_the_detail_says_what_is_down_and_when_to_try_again():
    assert outage_detail("the database") == (
        "The portal cannot reach the database right now; try again in 5 seconds."
    )


def test_the_back_off_doubles_up_to_its_cap():
    assert [retry_delay(n) for n in range(8)] == [1, 2, 4, 8, 16, 30, 30, 30]
    assert retry_delay(1_000) == RETRY_DELAY_MAX


def _record(error):
    try:
        raise error
    except Exception:
        exc_info = sys.exc_info()
    return logging.LogRecord(
        "django.request",
        logging.ERROR,
        __file__,
        1,
        "%s: %s",
        ("Service Unavailable", "/x"),
        exc_info,
    )


def test_an_outage_is_logged_as_one_line_without_its_traceback():
    record = _record(
        OperationalError("connection failed: FATAL: the database is starting up\nDETAIL: more")
    )
    assert OutageLogFilter().filter(record)
    assert record.exc_info is None
    assert logging.Formatter().format(record) == (
        "Service Unavailable: /x (the database is unavailable: OperationalError: "
        "connection failed: FATAL: the database is starting up)"
    )


def test_any_other_error_keeps_its_traceback():
    record = _record(ValueError("a bug"))
    assert OutageLogFilter().filter(record)
    assert record.exc_info is not None
    assert "Traceback" in logging.Formatter().format(record)
