"""Typed readers for environment variables.

Every helper fails loudly (``ImproperlyConfigured`` naming the variable and the
expected form) instead of silently falling back to a default when a value is
present but malformed. An unset or empty variable yields the default.
"""

import math
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import overload
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _bad(name: str, value: str, expected: str, *, secret: bool = False) -> ImproperlyConfigured:
    shown = "(value hidden)" if secret else repr(value)
    return ImproperlyConfigured(f"{name}={shown} is not valid: expected {expected}.")


@overload
def env_str(name: str, default: str) -> str: ...
@overload
def env_str(name: str, default: None = None) -> str | None: ...
def env_str(name: str, default: str | None = None) -> str | None:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise _bad(name, value, "one of 1/0, true/false, yes/no, on/off")


def env_int(
    name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, value, "a whole number") from None
    if minimum is not None and number < minimum:
        raise _bad(name, value, f"a whole number of at least {minimum}")
    if maximum is not None and number > maximum:
        raise _bad(name, value, f"a whole number of at most {maximum}")
    return number


def env_list(name: str, default: list[str], *, secret: bool = False) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default)
    items = [item.strip() for item in value.split(",")]
    if any(not item for item in items):
        raise _bad(name, value, "a comma-separated list without empty items", secret=secret)
    return items


def env_choice(name: str, default: str, choices: list[str]) -> str:
    value = _raw(name)
    if value is None:
        return default
    if value not in choices:
        raise _bad(name, value, "one of " + ", ".join(choices))
    return value


def env_url(
    name: str, default: str | None, *, schemes: tuple[str, ...] = ("http", "https")
) -> str | None:
    value = _raw(name) or default
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise _bad(name, value, "an absolute URL starting with " + " or ".join(schemes))
    return value.rstrip("/")


def secret_read(path: Path) -> str:
    """The secret stored at ``path``, or "" if there is none (nothing is created here)."""
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def secret_file(path: Path, *, generate: Callable[[], str]) -> str:
    """Return the secret stored at ``path``, creating it first if needed.

    The file is created atomically with mode 0600, so that several processes
    starting at once (web, worker, beat) agree on one value.
    """
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate()
    # Write the whole value under a private name, then link it into place:
    # link() fails if another process won the race, and nobody ever reads a
    # half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return str(path.read_text().strip())
    finally:
        tmp.unlink(missing_ok=True)
    return value


def env_float(
    name: str, default: float, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    value = _raw(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        raise _bad(name, value, "a number") from None
    if not math.isfinite(number):
        raise _bad(name, value, "a finite number")
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise _bad(name, value, f"a number from {minimum} to {maximum}")
    return number


def env_fernet_keys(name: str, *, file: Path) -> list[str]:
    """Fernet keys from a comma-separated variable, else the one in `file` (manage.py
    init_data writes it); none at all when neither exists."""
    from cryptography.fernet import Fernet

    keys = env_list(name, [], secret=True)
    if not keys:
        stored = secret_read(file)
        keys = [stored] if stored else []
    for number, key in enumerate(keys, 1):
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured(
                f"{name}: key {number} of {len(keys)} is not a Fernet key (32 bytes in "
                'URL-safe base64; make one with `python -c "from cryptography.fernet import '
                'Fernet; print(Fernet.generate_key().decode())"`).'
            ) from None
    return keys


def fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def random_secret_key() -> str:
    return secrets.token_urlsafe(50)


_TEAM_ROLES = ("viewer", "editor", "admin")


def env_team_map(name: str) -> dict[str, list[tuple[str, str]]]:
    """Claim values to team memberships: "group=team-slug:role,..." → {group: [(slug, role)]}.
    A value may name several teams (repeat it); roles are viewer, editor or admin."""
    value = _raw(name)
    mapping: dict[str, list[tuple[str, str]]] = {}
    if value is None:
        return mapping
    expected = (
        'a comma-separated list of claim-value=team-slug:role, e.g. "platform-devs='
        'platform:editor,platform-admins=platform:admin" (roles: viewer, editor, admin)'
    )
    for item in value.split(","):
        claim, _, target = item.strip().partition("=")
        slug, _, role = target.partition(":")
        if not claim.strip() or not slug.strip() or role.strip() not in _TEAM_ROLES:
            raise _bad(name, value, expected)
        mapping.setdefault(claim.strip(), []).append((slug.strip(), role.strip()))
    return mapping
