"""Secrets are masked in every part of a log record: message, exception text, stack (SPEC §9)."""

import io
import logging

import pytest

from tasks_app.lib.crypto import MASK
from tasks_app.lib.log_masking import secret_register

SENTINEL = "Sentinel-Traceback-Secret-0123456789"


@pytest.fixture
def output():
    """What a plain StreamHandler writes, as the portal's console handler does."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("tests.log_masking")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield logger, stream
    logger.removeHandler(handler)


def test_it_masks_a_registered_secret_in_an_exception_s_text(output, caplog):
    logger, stream = output
    secret_register(SENTINEL)
    try:
        try:
            raise KeyError(f"token {SENTINEL} refused")
        except KeyError as inner:
            raise RuntimeError(f"could not use {SENTINEL}") from inner
    except RuntimeError:
        logger.exception("the call failed")

    written = stream.getvalue()
    assert "Traceback (most recent call last)" in written
    assert "RuntimeError: could not use ********" in written
    assert f"KeyError: 'token {MASK} refused'" in written  # the cause, too
    assert SENTINEL not in written + caplog.text
    (record,) = [r for r in caplog.records if r.name == "tests.log_masking"]
    assert record.exc_info is None  # no handler can format the raw exception again


def test_it_masks_the_stack_info(output):
    logger, _ = output
    secret_register(SENTINEL)
    record = logger.makeRecord(
        logger.name, logging.INFO, __file__, 1, "message", (), None, sinfo=f"Stack: {SENTINEL}"
    )
    assert record.stack_info == f"Stack: {MASK}"


def test_an_exception_without_secrets_keeps_its_exc_info(output, caplog):
    logger, stream = output
    try:
        raise ValueError("nothing secret here")
    except ValueError:
        logger.exception("plain failure")
    (record,) = [r for r in caplog.records if r.name == "tests.log_masking"]
    assert record.exc_info is not None
    assert "ValueError: nothing secret here" in stream.getvalue()


def test_a_secret_in_the_message_arguments_is_masked(output):
    logger, stream = output
    secret_register(SENTINEL)
    logger.warning("got %s", SENTINEL)
    assert stream.getvalue() == f"WARNING got {MASK}\n"


@pytest.mark.parametrize(
    "text",
    [
        "b'<SecretAccessKey>bKrnEnJCSN0X55ER5zSkT8mx+nj/U29RDJsh4Lzv</SecretAccessKey>'",
        '{"secretAccessKey": "bKrnEnJCSN0X55ER5zSkT8mx+nj/U29RDJsh4Lzv"}',
        "{'SessionToken': b'bKrnEnJCSN0X55ER5zSkT8mx+nj/U29RDJsh4Lzv'}",
        "aws_secret_access_key=bKrnEnJCSN0X55ER5zSkT8mx+nj/U29RDJsh4Lzv",
    ],
)
def test_a_credential_field_is_masked_whole_even_when_its_value_starts_with_b(text):
    from tasks_app.lib.log_masking import mask

    value = "bKrnEnJCSN0X55ER5zSkT8mx+nj/U29RDJsh4Lzv"
    # Before: the value's leading "b" passed for a bytes prefix and stayed in the log.
    assert mask(text) == text.replace(value, MASK)


def test_a_closing_tag_is_left_alone():
    from tasks_app.lib.log_masking import mask

    text = "<SessionToken>abcdefghijkl</SessionToken>\\n  <Expiration>2026</Expiration>"
    assert mask(text) == f"<SessionToken>{MASK}</SessionToken>\\n  <Expiration>2026</Expiration>"


@pytest.mark.django_db
def test_the_password_a_web_process_serves_is_masked_too(output):
    """The web decrypts a credential's token to serve it; the password inside it is as
    secret (docker login takes it), and is masked from then on, as in the worker."""
    from tasks_app.models import TaskConfig
    from tasks_app.services.variables import task_values
    from tests.factories import give_credential, make_job, make_plan, make_task, make_team

    task = make_task(make_job(make_plan(make_team("Platform"))))
    give_credential(task, password="Sentinel-Served-Password-1")
    task = TaskConfig.objects.select_related("credential").get(pk=task.pk)
    values = task_values(task, secrets=True)
    assert "Sentinel-Served-Password-1" in values.values()
    logger, stream = output
    logger.warning("docker login -p Sentinel-Served-Password-1")
    assert stream.getvalue() == f"WARNING docker login -p {MASK}\n"
