"""Environment snippets for Bash, PowerShell, cmd and dotenv (SPEC §6).

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

import re

from django.conf import settings

SHELLS = ("bash", "powershell", "cmd", "dotenv")
SHELL_LABELS = {"bash": "Bash", "powershell": "PowerShell", "cmd": "cmd"}

# The standard names of the reference document, for tools such as the AWS CLI.
STANDARD_NAMES = (
    ("AUTHORIZATION_TOKEN", "ecr.authorizationToken.password"),
    ("EXPIRATION_DATE", "ecr.expirationDate"),
    ("PROXY_ENDPOINT", "ecr.proxyEndpoint"),
    ("PROXY_ENDPOINT_DOMAIN", "ecr.proxyEndpointDomain"),
    ("USERNAME", "ecr.username"),
    ("PASSWORD", "ecr.password"),
)
_POWERSHELL_QUOTES = "'\u2018\u2019\u201a\u201b"
_CMD_SPECIAL = set("^&|<>()")


def env_name(key: str, prefix: str | None = None) -> str:
    """bamboo_ + the key with dots as underscores, case kept."""
    prefix = settings.ENV_PREFIX if prefix is None else prefix
    return prefix + key.replace(".", "_")


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


def assignment(shell: str, name: str, value: str) -> str:
    if shell == "bash":
        return f"export {name}={quote_bash(value)}"
    if shell == "powershell":
        return f"$Env:{name} = {quote_powershell(value)}"
    if shell == "cmd":
        return set_cmd(name, value)
    if shell == "dotenv":
        return f"{name}={quote_dotenv(value)}"
    raise ValueError(f"unknown shell {shell!r}")


def env_snippet(shell: str, values: dict[str, str]) -> str:
    """Every variable as an environment variable of the shell, one per line."""
    lines = [assignment(shell, env_name(key), value) for key, value in values.items()]
    return "\n".join(lines) + "\n"


def mapping_snippet(shell: str, namespace: str) -> str:
    """The reference document's snippet: the standard names from the portal's variables."""
    lines = []
    for standard, suffix in STANDARD_NAMES:
        source = env_name(f"{namespace}.{suffix}")
        if shell == "bash":
            lines.append(f"export {standard}=${source}")
        elif shell == "powershell":
            lines.append(f"${standard} = $Env:{source}")
        elif shell == "cmd":
            lines.append(f"set {standard}=%{source}%")
        else:
            raise ValueError(f"no mapping snippet for {shell!r}")
    return "\n".join(lines) + "\n"


def ci_snippet(shell: str, *, env_url: str, namespace: str) -> str:
    """Fetch fresh credentials with an API token, then log in with docker, podman or helm."""
    password = env_name(f"{namespace}.ecr.password")
    endpoint = env_name(f"{namespace}.ecr.proxyEndpoint")
    domain = env_name(f"{namespace}.ecr.proxyEndpointDomain")
    if shell == "bash":
        return (
            f'eval "$(curl -fsS -H "Authorization: Bearer $ECRPORTAL_TOKEN" '
            f"'{env_url}?shell=bash')\"\n"
            f'printf %s "${password}" | docker login --username AWS --password-stdin '
            f'"${endpoint}"\n'
            f'printf %s "${password}" | podman login --username AWS --password-stdin '
            f'"${domain}"\n'
            f'printf %s "${password}" | helm registry login --username AWS --password-stdin '
            f'"${domain}"\n'
        )
    if shell == "powershell":
        return (
            "Invoke-Expression (Invoke-RestMethod -Headers @{Authorization = "
            f"\"Bearer $Env:ECRPORTAL_TOKEN\"}} -Uri '{env_url}?shell=powershell')\n"
            f"$Env:{password} | docker login --username AWS --password-stdin $Env:{endpoint}\n"
            f"$Env:{password} | podman login --username AWS --password-stdin $Env:{domain}\n"
            f"$Env:{password} | helm registry login --username AWS --password-stdin "
            f"$Env:{domain}\n"
        )
    if shell == "cmd":
        return (
            f'curl -fsS -H "Authorization: Bearer %ECRPORTAL_TOKEN%" -o ecr-env.cmd '
            f'"{env_url}?shell=cmd" && call ecr-env.cmd && del ecr-env.cmd\n'
            f"echo %{password}%| docker login --username AWS --password-stdin %{endpoint}%\n"
            f"echo %{password}%| podman login --username AWS --password-stdin %{domain}%\n"
            f"echo %{password}%| helm registry login --username AWS --password-stdin "
            f"%{domain}%\n"
        )
    raise ValueError(f"no CI snippet for {shell!r}")
