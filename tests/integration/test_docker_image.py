"""The Docker image, as far as a machine without a Docker engine can check it: the Dockerfile
is parsed, and must install exactly the lock that .ci/run and
tests/integration/test_make_run.py prove (requirements.lock alone) and copy exactly what the
portal needs at run time."""

import json
import re
import shlex
import tomllib

import pytest
from django.conf import settings

from devtools.runtime_check import PACKAGES
from tests.helpers import ROOT


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, with continuation lines joined, comments left out."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


@pytest.fixture(scope="module")
def dockerfile():
    return instructions()


def _pip_installs(dockerfile):
    return [
        (i, args)
        for i, (keyword, args) in enumerate(dockerfile)
        if keyword == "RUN" and re.search(r"\bpip3? install\b", args)
    ]


def _copies(dockerfile):
    """{source: index} of every COPY from the build context."""
    copies = {}
    for i, (keyword, args) in enumerate(dockerfile):
        if keyword == "COPY":
            *sources, _dest = shlex.split(args)
            assert not any(s.startswith("--from") for s in sources)
            for source in sources:
                copies[source] = i
    return copies


def test_the_image_installs_the_runtime_lock_alone_with_hashes(dockerfile):
    (index, args), *others = _pip_installs(dockerfile)
    assert others == [], "one pip install: the runtime lock"
    words = shlex.split(args)
    assert words[:2] == ["pip", "install"]
    assert "--require-hashes" in words
    # Every -r names the runtime lock; nothing is installed by name beside it.
    requirement_files = [words[i + 1] for i, w in enumerate(words) if w == "-r"]
    assert requirement_files == ["requirements.lock"]
    assert [w for w in words[2:] if not w.startswith("-") and w not in requirement_files] == []
    assert _copies(dockerfile)["requirements.lock"] < index
    assert "requirements-dev.lock" not in (ROOT / "Dockerfile").read_text()


def test_the_image_copies_what_the_portal_runs_and_no_development_tools(dockerfile):
    templates = {str(d.relative_to(ROOT)) for t in settings.TEMPLATES for d in t["DIRS"]}
    needed = {"manage.py", "requirements.lock", *PACKAGES, *templates}
    assert set(_copies(dockerfile)) == needed


def test_the_image_runs_python_of_the_project(dockerfile):
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11,<3.12"
    (base,) = [args for keyword, args in dockerfile if keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11-slim-\w+", base)


def test_the_image_starts_the_procfile_s_web_command(dockerfile):
    (cmd,) = [args for keyword, args in dockerfile if keyword == "CMD"]
    procfile = dict(
        line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line
    )
    assert " ".join(json.loads(cmd)) == procfile["web"]  # the exec form is a JSON list


def test_the_image_serves_its_static_files_and_runs_unprivileged(dockerfile):
    runs = [args for keyword, args in dockerfile if keyword == "RUN"]
    assert any("manage.py collectstatic" in run for run in runs)
    users = [args for keyword, args in dockerfile if keyword == "USER"]
    assert users == ["ecrportal"]
    # USER comes after every RUN: nothing the portal runs is root.
    last_run = max(i for i, (keyword, _) in enumerate(dockerfile) if keyword == "RUN")
    assert [keyword for keyword, _ in dockerfile].index("USER") > last_run
