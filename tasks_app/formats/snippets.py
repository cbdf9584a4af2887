"""Environment snippets for Bash, PowerShell, cmd and dotenv (SPEC §6), from one table of shells.

Values are quoted so that any value survives the shell unchanged:

- Bash: single quotes; a ' becomes '\\'' (close, escaped quote, reopen).
- PowerShell: single quotes; every single-quote character, including the
  typographic ones PowerShell also accepts (U+2018, U+2019, U+201A, U+201B), is doubled.
- cmd (for batch files, as CI script tasks run them): set "NAME=value", with
  %% for %, and ^ before & | < > ( ) ^ wherever an embedded " has left the
  quotes. cmd cannot hold a line break in a variable; such values are left
  out with a remark. ! is literal while delayed expansion is off (the default).
- dotenv (python-dotenv): single quotes with \\\\ and \\' escapes.
"""

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from tasks_app.rules.generated_variables import (
    ENDPOINT,
    ENDPOINT_DOMAIN,
    GENERATED,
    PASSWORD,
    env_name,
    variable_key,
)

_POWERSHELL_QUOTES = "'\u2018\u2019\u201a\u201b"
_CMD_SPECIAL = set("^&|<>()")
# Registry logins the CI snippet shows: the command, and the variable with the registry.
LOGINS = (
    ("docker login", ENDPOINT),
    ("podman login", ENDPOINT_DOMAIN),
    ("helm registry login", ENDPOINT_DOMAIN),
)


# How every Bash snippet sends the API token: the token stays in the variable, never on the page.
TOKEN_VARIABLE = "ECRPORTAL_TOKEN"  # noqa: S105 - a variable's name
BEARER_BASH = f'-H "Authorization: Bearer ${TOKEN_VARIABLE}"'
# What a person pastes in place of the token: the shape of one, never one.
TOKEN_PLACEHOLDER = "ecrp_…"  # noqa: S105 - a placeholder


def with_query(url: str, **params: str) -> str:
    """The URL with these query parameters added (after any it already has)."""
    return url + ("&" if "?" in url else "?") + urlencode(params)


def quote_bash(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def quote_powershell(value: str) -> str:
    return "'" + re.sub(f"([{_POWERSHELL_QUOTES}])", r"\1\1", value) + "'"


def quote_dotenv(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def set_cmd(name: str, value: str) -> str:
    if "\n" in value or "\r" in value:
        return f"rem {name}: the value has a line break, which cmd cannot hold"
    out, quoted = [], True  # just after the opening quote of set "NAME=
    for ch in value:
        if ch == '"':
            quoted = not quoted
            out.append(ch)
        elif ch == "%":
            out.append("%%")
        elif ch in _CMD_SPECIAL and not quoted:
            out.append("^" + ch)
        else:
            out.append(ch)
    return f'set "{name}={"".join(out)}"'


@dataclass(frozen=True)
class Script:
    """How a shell's scripts read variables and log in: for the snippets people copy."""

    read: Callable[[str], str]  # NAME -> how a script reads it
    alias: Callable[[str, str], str]  # NAME, what it reads -> the line that sets it
    fetch: Callable[[str], str]  # the env URL -> the line that loads the variables
    pipe: Callable[[str, str, str], str]  # password, login command, registry -> login line


@dataclass(frozen=True)
class Shell:
    label: str
    assign: Callable[[str, str], str]  # NAME, value -> the line that sets it
    script: Script | None = None  # None: a format to load, not a shell to type in


SHELLS_TABLE = {
    "bash": Shell(
        label="Bash",
        assign=lambda name, value: f"export {name}={quote_bash(value)}",
        script=Script(
            read=lambda name: f"${name}",
            alias=lambda name, source: f"export {name}={source}",
            fetch=lambda url: f'eval "$(curl -fsS {BEARER_BASH} {quote_bash(url)})"',
            pipe=lambda password, login, registry: (
                f'printf %s "{password}" | {login} --username AWS --password-stdin "{registry}"'
            ),
        ),
    ),
    "powershell": Shell(
        label="PowerShell",
        assign=lambda name, value: f"$Env:{name} = {quote_powershell(value)}",
        script=Script(
            read=lambda name: f"$Env:{name}",
            alias=lambda name, source: f"${name} = {source}",
            fetch=lambda url: (
                "Invoke-Expression (Invoke-RestMethod -Headers @{Authorization = "
                f'"Bearer $Env:{TOKEN_VARIABLE}"}} -Uri {quote_powershell(url)})'
            ),
            pipe=lambda password, login, registry: (
                f"{password} | {login} --username AWS --password-stdin {registry}"
            ),
        ),
    ),
    "cmd": Shell(
        label="cmd",
        assign=set_cmd,
        script=Script(
            read=lambda name: f"%{name}%",
            alias=lambda name, source: f"set {name}={source}",
            fetch=lambda url: (
                f'curl -fsS -H "Authorization: Bearer %{TOKEN_VARIABLE}%" -o ecr-env.cmd '
                f'"{url.replace("%", "%%")}" && call ecr-env.cmd && del ecr-env.cmd'
            ),
            pipe=lambda password, login, registry: (
                f"echo {password}| {login} --username AWS --password-stdin {registry}"
            ),
        ),
    ),
    "dotenv": Shell(label="dotenv", assign=lambda name, value: f"{name}={quote_dotenv(value)}"),
}
SHELLS = tuple(SHELLS_TABLE)
# The shells people copy snippets for in the browser (dotenv is an API format).
SHELL_LABELS = {name: shell.label for name, shell in SHELLS_TABLE.items() if shell.script}


def _shell(name: str) -> Shell:
    shell = SHELLS_TABLE.get(name)
    if shell is None:
        raise ValueError(f"unknown shell {name!r}")
    return shell


def _script(name: str, what: str) -> Script:
    script = _shell(name).script
    if script is None:
        raise ValueError(f"no {what} snippet for {name!r}")
    return script


def assignment(shell: str, name: str, value: str) -> str:
    return _shell(shell).assign(name, value)


def env_snippet(shell: str, values: dict[str, str]) -> str:
    """Every variable as an environment variable of the shell, one per line."""
    lines = [assignment(shell, env_name(key), value) for key, value in values.items()]
    return "\n".join(lines) + "\n"


def mapping_snippet(shell: str, namespace: str) -> str:
    """The reference document's snippet: the standard names from the portal's variables."""
    script = _script(shell, "mapping")
    lines = [
        script.alias(g.standard, script.read(env_name(f"{namespace}.{g.suffix}")))
        for g in GENERATED
        if g.standard
    ]
    return "\n".join(lines) + "\n"


def ci_snippet(shell: str, *, env_url: str, namespaces: Sequence[str]) -> str:
    """Fetch fresh credentials with an API token, then log in with docker, podman or helm
    to the registry of each namespace."""
    script = _script(shell, "CI")
    lines = [script.fetch(with_query(env_url, shell=shell))]
    for namespace in namespaces:
        password = script.read(env_name(variable_key(namespace, PASSWORD)))
        for login, registry in LOGINS:
            lines.append(
                script.pipe(password, login, script.read(env_name(f"{namespace}.{registry}")))
            )
    return "\n".join(lines) + "\n"


def kubernetes_snippet(*, secret_url: str) -> str:
    """An image pull secret from the portal, applied with kubectl (Bash)."""
    url = with_query(secret_url, name="ecr-pull", namespace="default")
    return f"curl -fsS {BEARER_BASH} \\\n  {quote_bash(url)} \\\n  | kubectl apply -f -\n"


def docker_config_snippet(*, config_url: str, download_url: str, hosts: Sequence[str]) -> str:
    """A config.json in a folder of its own for docker, podman, buildah, skopeo, crane and
    helm; or the credential helper, installed once (Bash)."""
    helper = "$HOME/.local/bin/docker-credential-ecrportal"
    cred_helpers = json.dumps({"credHelpers": dict.fromkeys(hosts, "ecrportal")})
    return (
        "# A config.json of its own (your ~/.docker/config.json is left alone):\n"
        'export DOCKER_CONFIG="$(mktemp -d)" REGISTRY_AUTH_FILE="$DOCKER_CONFIG/config.json"\n'
        f'curl -fsS {BEARER_BASH} -o "$REGISTRY_AUTH_FILE" {quote_bash(config_url)}\n'
        "\n"
        "# Or the credential helper: it asks the portal at every login.\n"
        f'mkdir -p "$(dirname "{helper}")" && curl -fsSo "{helper}" {quote_bash(download_url)} '
        f'&& chmod +x "{helper}"\n'
        f"# with ECRPORTAL_URL and {TOKEN_VARIABLE} set, and in ~/.docker/config.json:\n"
        f"# {cred_helpers}\n"
    )


def token_snippet(*, variables_url: str) -> str:
    """How a CI job uses an API token: the token in a variable (a placeholder here, never a
    token), then the variables its binding sees (Bash)."""
    return (
        f"# The token shown once when it was created, kept as a secret of your CI system:\n"
        f"export {TOKEN_VARIABLE}={quote_bash(TOKEN_PLACEHOLDER)}\n"
        f"curl -fsS {BEARER_BASH} {quote_bash(variables_url)}\n"
    )
