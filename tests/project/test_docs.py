"""README and .env.example stay true to the settings the code reads."""

import re

from tests.helpers import ROOT

# Read by the test suite and .ci/run, not by the portal itself.
TEST_ONLY = {"ECRPORTAL_REQUIRE_SERVICES", "ECRPORTAL_TEST_REDIS_URL"}


def settings_read_by_code() -> set[str]:
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
    code = settings_read_by_code()
    example = _documented(".env.example")
    assert code - example == set(), "add these to .env.example"
    # docker-compose's own variables may be documented there too.
    compose_only = {"POSTGRES_PASSWORD", "ECRPORTAL_PORT"}
    assert example - code - compose_only == set(), "unknown to the code"


def test_every_setting_and_test_switch_is_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in settings_read_by_code() | TEST_ONLY if f"`{name}`" not in readme}
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


def _layout_rows() -> dict[str, str]:
    """README's layout table: each row's first cell (paths), and the row."""
    readme = (ROOT / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        cells = line.split("|")
        if len(cells) > 3 and "`" in cells[1]:
            rows[cells[1].strip()] = line
    return rows


def test_the_readme_layout_table_lists_every_module():
    """Each module is in a row of its own path, or in its folder's row by file name."""
    rows = _layout_rows()
    missing = []
    for package in ("ecrportal", "tasks_app"):
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if path.name == "__init__.py" or "migrations" in relative.parts:
                continue
            folder = f"`{relative.parent.as_posix()}/`"
            if relative.parent.name == "commands":  # the management folder's row names them
                folder, name = "`tasks_app/management/`", f"`{path.stem}`"
            else:
                name = f"`{path.name}`"
            listed = any(f"`{relative.as_posix()}`" in key for key in rows) or any(
                folder in key and name in row for key, row in rows.items()
            )
            if not listed:
                missing.append(relative.as_posix())
    assert missing == []


def test_the_readmes_pictures_are_the_ones_make_screenshots_copies():
    """Every picture the README shows is in docs/screenshots/ and is one `make screenshots`
    takes again (DOC_SCREENSHOTS), so that none goes stale unnoticed."""
    readme = (ROOT / "README.md").read_text()
    shown = set(re.findall(r"docs/screenshots/([\w-]+)\.png", readme))
    makefile = (ROOT / "Makefile").read_text()
    copied = set(re.search(r"^DOC_SCREENSHOTS = (.*)$", makefile, re.MULTILINE)[1].split())
    assert shown - copied == set(), "add these to DOC_SCREENSHOTS in the Makefile"
    assert {p.stem for p in (ROOT / "docs" / "screenshots").glob("*.png")} == copied
