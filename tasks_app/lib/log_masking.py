"""Keeps secrets out of log records, whichever handler receives them.

Two nets, applied as each record is created (so they cover every handler,
pytest's included):

- every secret value this process has decrypted or received from AWS is
  replaced by ********;
- credential fields in AWS payloads (botocore logs request and response
  bodies at DEBUG) are replaced by ******** even when their value is new;
- the portal's API tokens (`ApiToken.PREFIX` and 43 URL-safe characters) are replaced by
  ******** wherever they appear, e.g. pasted into a URL's query string.
"""

import logging
import re
import threading
from collections import OrderedDict

MASK = "********"
# Shorter values are too likely to occur in ordinary text to be masked safely.
MIN_LENGTH = 8
MAX_KNOWN = 10_000

_lock = threading.Lock()
# The values to mask, most recently seen last. Not a cache (tasks_app/lib/caches.py): an
# entry is never stale and cannot be fetched again, it is dropped only to bound memory, and
# caches_clear() must never forget it.
_known: OrderedDict[str, None] = OrderedDict()
_known_pattern: re.Pattern | None = None

# A field name (not a closing tag), what separates it from its value (`>`, `": "`, `=`,
# `: b'` for bytes), and the value. The bytes prefix counts only before a quote: a value
# may itself start with "b".
_PAYLOAD_FIELDS = re.compile(
    r"(?<!/)(SecretAccessKey|SessionToken|secretAccessKey|sessionToken|authorizationToken"
    r"|X-Amz-Security-Token|aws_secret_access_key|aws_session_token)"
    r"([\"']?\s*[:=>]\s*(?:b?[\"'])?)"
    r"([^\"'<,\s}\]]+)"
)

# ApiToken's shape (models/tokens.py: the prefix and secrets.token_urlsafe(32)); a test
# holds the two together.
API_TOKEN = re.compile(r"ecrp_[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")


def secret_register(value: str) -> None:
    """Mask this value in every log record from now on."""
    global _known_pattern
    if not value or len(value) < MIN_LENGTH:
        return
    with _lock:
        if value in _known:
            _known.move_to_end(value)
            return
        _known[value] = None
        while len(_known) > MAX_KNOWN:
            _known.popitem(last=False)
        _known_pattern = None


def _pattern() -> re.Pattern | None:
    global _known_pattern
    with _lock:
        if _known_pattern is None and _known:
            alternatives = sorted(_known, key=len, reverse=True)
            _known_pattern = re.compile("|".join(map(re.escape, alternatives)))
        return _known_pattern


def mask(text: str) -> str:
    text = _PAYLOAD_FIELDS.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = API_TOKEN.sub(MASK, text)
    pattern = _pattern()
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return text


def _mask_traceback(record: logging.LogRecord) -> None:
    """Mask the exception and stack texts too (an exception's message may hold a secret).

    The exception is formatted here, once, and kept masked as exc_text, which every
    logging.Formatter prints instead of formatting exc_info again. Where that text held a
    secret, exc_info is dropped, so that no handler can render the exception itself.
    """
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        text = _FORMATTER.formatException(record.exc_info)
        masked = mask(text)
        record.exc_text = masked
        if masked != text:
            record.exc_info = None
    elif record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)


_FORMATTER = logging.Formatter()


def install() -> None:
    """Wrap the log record factory once per process."""
    current = logging.getLogRecordFactory()
    if getattr(current, "masks_secrets", False):
        return

    def factory(*args, **kwargs):
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string is logging's own problem to report
            message = None
        if message is not None:
            masked = mask(message)
            if masked != message:
                record.msg, record.args = masked, ()
        _mask_traceback(record)
        return record

    factory.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
