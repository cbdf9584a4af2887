"""Shell snippets keep every value intact (SPEC §6)."""

import io
import json
import subprocess

import pytest
from dotenv import dotenv_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks_app.formats.snippets import (
    ci_snippet,
    env_snippet,
    mapping_snippet,
    set_cmd,
)
from tasks_app.rules.generated_variables import env_name
from tests.helpers import ROOT

GOLDEN = ROOT / "tests" / "golden"
NASTY = {
    "custom.aws.ecr.plain": "AWS",
    "custom.aws.ecr.single": "it's",
    "custom.aws.ecr.double": 'say "hi"',
    "custom.aws.ecr.dollar": "$HOME ${PATH} $(id) `id`",
    "custom.aws.ecr.percent": "100% %PATH% %%",
    "custom.aws.ecr.caret": "a^b & c | d < e > f (g)",
    "custom.aws.ecr.bang": "wow! !PATH!",
    "custom.aws.ecr.odd_quote": 'one " quote & more',
    "custom.aws.ecr.unicode": "Zo\u00eb \u2018curly\u2019 \u201alow\u201b \u2713",
    "custom.aws.ecr.json.password": json.dumps({"password": "p@ss'w\"rd", "n": 1}),
    "custom.aws.ecr.newline": "line one\nline two",
}

# Any text bash can hold in a variable: everything but NUL.
values = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))


def _bash(script: str) -> bytes:
    return subprocess.run(
        ["bash", "--norc", "--noprofile"],
        input=script.encode(),
        capture_output=True,
        check=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"},
    ).stdout


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(values, min_size=1, max_size=6))
def test_bash_snippets_reproduce_any_value(texts):
    items = {f"custom.aws.ecr.v{i}": text for i, text in enumerate(texts)}
    snippet = env_snippet("bash", items)
    printer = "".join(f'printf "%s\\0" "${env_name(k)}"\n' for k in items)
    # eval, as the CI one-liner does: eval "$(curl ...)"
    script = f"eval {_single(snippet)}\n{printer}"
    out = _bash(script).decode().split("\0")[:-1]
    assert out == texts


def _single(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def test_bash_snippets_reproduce_the_nasty_values():
    printer = "".join(f'printf "%s\\0" "${env_name(k)}"\n' for k in NASTY)
    out = _bash(f"eval {_single(env_snippet('bash', NASTY))}\n{printer}").decode()
    assert out.split("\0")[:-1] == list(NASTY.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=1, max_size=6))
def test_dotenv_output_round_trips_through_python_dotenv(texts):
    items = {f"custom.aws.ecr.v{i}": text.replace("\r", "") for i, text in enumerate(texts)}
    parsed = dotenv_values(stream=io.StringIO(env_snippet("dotenv", items)))
    assert parsed == {env_name(k): v for k, v in items.items()}


@pytest.mark.parametrize("shell", ["powershell", "cmd"])
def test_powershell_and_cmd_snippets_match_the_golden_files(shell):
    expected = (GOLDEN / f"env.{shell}.txt").read_text(encoding="utf-8")
    assert env_snippet(shell, NASTY) == expected


def test_cmd_escapes_only_outside_quotes():
    assert set_cmd("X", "a&b") == 'set "X=a&b"'
    assert set_cmd("X", 'a"&b') == 'set "X=a"^&b"'
    assert set_cmd("X", 'a"&"b&') == 'set "X=a"^&"b&"'
    assert set_cmd("X", "50%") == 'set "X=50%%"'
    assert set_cmd("X", "a\nb") == "rem X: the value has a line break, which cmd cannot hold"


@pytest.mark.parametrize(
    ("shell", "first", "last"),
    [
        (
            "bash",
            "export AUTHORIZATION_TOKEN=$bamboo_custom_aws_ecr_authorizationToken_password",
            "export PASSWORD=$bamboo_custom_aws_ecr_password",
        ),
        (
            "powershell",
            "$AUTHORIZATION_TOKEN = $Env:bamboo_custom_aws_ecr_authorizationToken_password",
            "$PASSWORD = $Env:bamboo_custom_aws_ecr_password",
        ),
        (
            "cmd",
            "set AUTHORIZATION_TOKEN=%bamboo_custom_aws_ecr_authorizationToken_password%",
            "set PASSWORD=%bamboo_custom_aws_ecr_password%",
        ),
    ],
)
def test_mapping_snippets_are_those_of_the_reference_document(shell, first, last):
    lines = mapping_snippet(shell, "custom.aws").splitlines()
    assert lines[0] == first
    assert lines[-1] == last
    assert len(lines) == 6
    names = [line.split()[1 if shell != "powershell" else 0] for line in lines]
    assert [n.split("=")[0].lstrip("$") for n in names] == [
        "AUTHORIZATION_TOKEN",
        "EXPIRATION_DATE",
        "PROXY_ENDPOINT",
        "PROXY_ENDPOINT_DOMAIN",
        "USERNAME",
        "PASSWORD",
    ]


def test_the_prefix_is_a_setting(settings):
    settings.ENV_PREFIX = "ci_"
    assert env_name("team.ns.ecr.password") == "ci_team_ns_ecr_password"
    assert "export USERNAME=$ci_team_ns_ecr_username" in mapping_snippet("bash", "team.ns")


def test_ci_snippets_fetch_with_the_token_and_log_in_with_stdin():
    bash = ci_snippet(
        "bash", env_url="https://portal/api/v1/tasks/T/env", namespaces=["custom.aws"]
    )
    assert bash.startswith(
        'eval "$(curl -fsS -H "Authorization: Bearer $ECRPORTAL_TOKEN" '
        "'https://portal/api/v1/tasks/T/env?shell=bash')\""
    )
    for tool in ("docker login", "podman login", "helm registry login"):
        assert f"{tool} --username AWS --password-stdin" in bash
    assert "?shell=powershell" in ci_snippet("powershell", env_url="u", namespaces=["n"])
    assert "call ecr-env.cmd" in ci_snippet("cmd", env_url="u", namespaces=["n"])
