"""requirements.lock is what users install (make run, the Docker image): it must hold every
package the portal imports, and everything those packages need. Offline checks; the
runtime environment itself is built and run in tests/integration/test_make_run.py and .ci/run."""

import importlib.metadata
import re

import pytest
from packaging.requirements import Requirement

from devtools import runtime_check
from devtools.runtime_check import normalize
from tests.helpers import ROOT

RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"


def missing_from_lock(declared: dict[str, set[str]], locked: dict[str, str]) -> list[str]:
    """What the lock lacks: the declared packages, then everything they need, by the
    metadata of the installed packages (the dev environment pins the same versions)."""
    problems = []
    todo = [(name, extras, "pyproject.toml") for name, extras in declared.items()]
    seen = set()
    while todo:
        name, extras, needed_by = todo.pop()
        if (name, frozenset(extras)) in seen:
            continue
        seen.add((name, frozenset(extras)))
        if name not in locked:
            problems.append(f"{name} (needed by {needed_by}) is not in requirements.lock")
            continue
        for spec in importlib.metadata.distribution(name).requires or ():
            requirement = Requirement(spec)
            marker = requirement.marker
            if marker and not any(marker.evaluate({"extra": e}) for e in extras | {""}):
                continue
            todo.append((normalize(requirement.name), set(requirement.extras), name))
    return sorted(problems)


def test_every_imported_package_is_declared_in_pyproject():
    problems = runtime_check.import_problems(
        runtime_check.third_party_imports(), runtime_check.declared_dependencies()
    )
    assert problems == []


def test_the_packages_imported_directly_are_declared_themselves():
    declared = runtime_check.declared_dependencies()
    # Each arrives through another package too; the portal imports them itself.
    assert {"certifi", "urllib3", "kombu", "botocore"} <= declared.keys()


def test_the_runtime_lock_holds_every_declared_package_and_all_they_need():
    locked = runtime_check.locked_versions(RUNTIME_LOCK)
    assert missing_from_lock(runtime_check.declared_dependencies(), locked) == []


def test_the_lock_check_names_a_package_taken_out_of_the_lock():
    locked = runtime_check.locked_versions(RUNTIME_LOCK)
    for name in ("vine", "certifi", "psycopg-binary", "packaging"):
        without = {k: v for k, v in locked.items() if k != name}
        problems = missing_from_lock(runtime_check.declared_dependencies(), without)
        assert len(problems) == 1
        assert problems[0].startswith(f"{name} (needed by ")


def test_the_import_check_names_an_undeclared_package():
    declared = runtime_check.declared_dependencies()
    declared.pop("certifi")
    imports = {"certifi": ["tasks_app/lib/webhooks.py:19"]}
    (problem,) = runtime_check.import_problems(imports, declared)
    assert (
        "module 'certifi' (imported by tasks_app/lib/webhooks.py:19) comes from certifi" in problem
    )


def test_the_import_check_names_a_module_this_environment_lacks():
    imports = {"no_such_module_here": ["tasks_app/x.py:3"]}
    (problem,) = runtime_check.import_problems(imports, runtime_check.declared_dependencies())
    assert problem.startswith(
        "missing module 'no_such_module_here' (imported by tasks_app/x.py:3)"
    )


def test_imports_inside_functions_are_found_too():
    imports = runtime_check.third_party_imports()
    assert any(place.startswith("tasks_app/lib/webhooks.py:") for place in imports["certifi"])
    # Imported inside a function, not at the top of the file.
    lines = (ROOT / "ecrportal/env.py").read_text().splitlines()
    nested = [
        f"ecrportal/env.py:{n}"
        for n, line in enumerate(lines, 1)
        if line.startswith("    from cryptography")
    ]
    assert nested
    assert set(nested) <= set(imports["cryptography"])
    assert "moto" not in imports  # the AWS stand-in lives in devtools/


def test_the_dev_lock_pins_the_runtime_packages_at_the_same_versions():
    runtime = runtime_check.locked_versions(RUNTIME_LOCK)
    dev = runtime_check.locked_versions(DEV_LOCK)
    assert {name: dev.get(name) for name in runtime} == runtime


@pytest.mark.parametrize("lock", [RUNTIME_LOCK, DEV_LOCK], ids=lambda p: p.name)
def test_every_pin_has_a_hash(lock):
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 1)[1])
    pinned = [e for e in entries if re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*==", e)]
    assert pinned
    assert [e.split(" ")[0] for e in pinned if "--hash=sha256:" not in e] == []


def test_the_makefile_installs_the_runtime_lock_for_tests_too():
    makefile = (ROOT / "Makefile").read_text()
    dev_rule = re.search(r"^\$\(DEV_STAMP\):(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert "$(RUNTIME_STAMP)" in dev_rule[1]  # the dev set-up installs the runtime lock first
    assert "RUNTIME_STAMP" not in dev_rule[2]  # and never marks it done itself
    runtime_rule = re.search(r"^\$\(RUNTIME_STAMP\):(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert "-r requirements.lock" in runtime_rule[2]
