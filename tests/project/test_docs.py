"""README and .env.example stay true to the settings the code reads."""

import re

from tests.helpers import ROOT

# Read by the test suite and .ci/run, not by the portal itself.
TEST_ONLY = {"ECRPORTAL_REQUIRE_SERVICES", "ECRPORTAL_TEST_REDIS_URL"}


def _read_by_code() -> set[str]:
    names = set()
    settings = (ROOT / "ecrportal" / "settings.py").read_text()
    names |= set(re.findall(r'env_\w+\(\s*"([A-Z][A-Z0-9_]+)"', settings))
    gunicorn = (ROOT / "ecrportal" / "gunicorn_conf.py").read_text()
    names |= set(re.findall(r'os\.environ\.get\("([A-Z][A-Z0-9_]+)"', gunicorn))
    for procfile in ("Procfile", "Procfile.demo"):
        names |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+):-", (ROOT / procfile).read_text()))
    return names


def _documented(path) -> set[str]:
    text = (ROOT / path).read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, re.MULTILINE))


def test_every_setting_is_in_env_example_and_nothing_else():
    code = _read_by_code()
    example = _documented(".env.example")
    assert code - example == set(), "add these to .env.example"
    # docker-compose's own variables may be documented there too.
    compose_only = {"POSTGRES_PASSWORD", "ECRPORTAL_PORT"}
    assert example - code - compose_only == set(), "unknown to the code"


def test_every_setting_and_test_switch_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in _read_by_code() | TEST_ONLY if f"`{name}`" not in readme}
    assert missing == set()


def test_the_quick_start_is_two_commands():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^(make \w+)$", quick_start, re.MULTILINE)
    assert commands == ["make run", "make test"]


def test_the_threat_model_names_every_attacker_file_and_only_files_that_exist():
    """docs/security.md: a surface is not done without its row and its attacker file."""
    text = (ROOT / "docs" / "security.md").read_text()
    named = set(re.findall(r"`(tests/[\w/]+\.py)`", text))
    assert {name for name in named if not (ROOT / name).exists()} == set()
    attacker_files = {
        str(path.relative_to(ROOT)) for path in (ROOT / "tests").rglob("test_attack_*.py")
    }
    assert attacker_files, "no attacker file found under tests/"
    assert attacker_files - named == set(), "give each attacker file its row in docs/security.md"
