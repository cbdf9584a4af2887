"""What a log line is about: the request, who acts, the task. The request middleware opens
a context per request (and names its actor), services that work on one task add it; the
JSON log format (ECRPORTAL_LOG_FORMAT=json) writes these fields beside each message.

Values are identifiers, never secrets; masking (lib/log_masking.py) applies to the message
as before, and the JSON format masks every field it writes."""

import contextlib
import contextvars
import logging
import re
import uuid

from pythonjsonlogger.json import JsonFormatter

from tasks_app.lib.log_masking import mask

# ECRPORTAL_LOG_FORMAT=json, for the portal's loggers (ecrportal/settings.py) and gunicorn's
# own (ecrportal/gunicorn_conf.py): python-json-logger, one object a line.
JSON_FORMATTER = {
    "()": "tasks_app.lib.log_context.MaskedJsonFormatter",
    "fmt": "%(levelname)s %(name)s %(message)s",
    "rename_fields": {"levelname": "level", "name": "logger"},
    "timestamp": "time",
}

# Record attributes the JSON format leaves out: Django's request object (its repr is the
# whole URL, query string included; the message names the path) and the socket gunicorn
# logs some errors with.
_UNWRITTEN = ("request", "server_time")


class MaskedJsonFormatter(JsonFormatter):
    """python-json-logger's formatter; every field is masked, not only the message (the plain
    format writes the message alone, which the record factory masked already)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._skip_fields.update(_UNWRITTEN)

    def jsonify_log_record(self, log_data) -> str:
        return mask(super().jsonify_log_record(log_data))


_fields: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "log_fields", default=None
)
# A request ID a client or a proxy sent (X-Request-ID) is kept only if it looks like one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


def request_id_from(header: str | None) -> str:
    """The client's X-Request-ID if it is a plain token, else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


@contextlib.contextmanager
def log_context(**fields: str | None):
    """Within the block, log records carry these fields (and the enclosing block's)."""
    merged = {**(_fields.get() or {}), **{k: str(v) for k, v in fields.items() if v}}
    token = _fields.set(merged)
    try:
        yield
    finally:
        _fields.reset(token)


def log_fields() -> dict[str, str]:
    """The current block's fields (a copy)."""
    return dict(_fields.get() or {})


def log_context_add(**fields: str | None) -> None:
    """Add fields to the current block (an actor known only once the API authenticated)."""
    current = _fields.get()
    if current is not None:
        current.update({k: str(v) for k, v in fields.items() if v})


class ContextFilter(logging.Filter):
    """Puts the current block's fields on each record a handler writes."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = dict(_fields.get() or {})
        # Django logs a 4xx/5xx answer (django.request) once the middleware has returned:
        # that record carries the request, which the middleware marked.
        request = record.__dict__.get("request")
        fields.update(getattr(request, "log_fields", None) or {})
        for name, value in fields.items():
            record.__dict__.setdefault(name, value)
        return True
