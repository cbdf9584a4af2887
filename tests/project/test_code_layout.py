"""The code's shape, kept by tests: the import contracts of pyproject.toml (layers, AWS in one
module, no import cycles), no private name imported across modules, and the type checker."""

import ast
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

PACKAGES = ("ecrportal", "tasks_app", "devtools", "tests", "bench")
# Django's documented model API, underscored to keep out of the way of field names.
DJANGO_PUBLIC = {"_meta", "_default_manager", "_base_manager", "_state"}


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def private_imports(root: Path = ROOT) -> list[str]:
    """`from x import _name` anywhere, and `module._name` of an imported portal module."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            imported = set()
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    for alias in node.names:
                        if alias.name.startswith("_") and not alias.name.startswith("__"):
                            found.append(f"{path.relative_to(root)}:{node.lineno} {alias.name}")
                        if node.module.startswith(("tasks_app", "ecrportal")):
                            imported.add(alias.asname or alias.name)
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in imported
                    and node.attr.startswith("_")
                    and not node.attr.startswith("__")
                    and node.attr not in DJANGO_PUBLIC
                ):
                    found.append(
                        f"{path.relative_to(root)}:{node.lineno} {node.value.id}.{node.attr}"
                    )
    return found


def test_no_module_imports_another_modules_private_names():
    assert private_imports() == []


def test_the_check_finds_a_private_import(tmp_path):
    (tmp_path / "tasks_app").mkdir()
    (tmp_path / "tasks_app" / "a.py").write_text(
        "from tasks_app.services.refresh import _enqueue\nfrom tasks_app import aws\naws._call\n"
    )
    for package in PACKAGES[:1] + PACKAGES[2:]:
        (tmp_path / package).mkdir()
    assert private_imports(tmp_path) == ["tasks_app/a.py:1 _enqueue", "tasks_app/a.py:3 aws._call"]


def test_the_import_contracts_are_kept():
    done = subprocess.run(
        [_bin("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 6 kept, 0 broken." in done.stdout


def test_the_type_checker_finds_nothing():
    done = subprocess.run([_bin("mypy")], cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def anchored_patterns(root: Path = ROOT) -> list[str]:
    """Validation patterns that end in `$` (which also matches before a final newline, so
    "ecr-pull\\n" passed as a DNS label): patterns are matched whole, with fullmatch or
    anchored by \\A and \\Z, in re.compile(...) and RegexValidator(...) alike."""
    found = []
    for package in ("ecrportal", "tasks_app"):
        for path in sorted((root / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                if name not in ("compile", "RegexValidator", "match", "search", "fullmatch"):
                    continue
                pattern = node.args[0]
                if (
                    isinstance(pattern, ast.Constant)
                    and isinstance(pattern.value, str)
                    and pattern.value.endswith("$")
                    and not pattern.value.endswith("\\$")
                ):
                    found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_input_patterns_match_the_whole_value():
    assert anchored_patterns() == []


def test_the_check_finds_a_dollar_anchored_pattern(tmp_path):
    (tmp_path / "tasks_app").mkdir()
    (tmp_path / "tasks_app" / "a.py").write_text(
        'import re\nNAME = re.compile(r"^[a-z]+$")\nOK = re.compile(r"[a-z]+")\n'
    )
    assert anchored_patterns(tmp_path) == ["tasks_app/a.py:2"]
