"""Does this Python environment run the portal? Meant for one built from requirements.lock alone.

    .venv/bin/python -m devtools.runtime_check      (from the project's folder)

Checks, naming the module and the file that imports it when something is missing:
1. every third-party module that ecrportal/ and tasks_app/ import, at the top of a file or
   inside a function, is installed, and its package is named in pyproject.toml's
   `dependencies` (not merely brought by another package);
2. every module of ecrportal/ and tasks_app/ imports, after django.setup();
3. what the portal loads by name rather than by import is there too: the production
   database backend and broker transport (PostgreSQL, Redis), the commands of the
   Procfile and the modules of `make run` (devtools/serve.py).

Uses the standard library (and Django, for 2), so that it runs in the runtime environment.
The lock's own completeness (every dependency of a locked package locked too) is pip's
`--require-hashes` check when the environment is built, and tests/project/test_runtime_lock.py's.
"""

import ast
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ecrportal", "tasks_app")
# Loaded by name in production, never imported by the portal's own code: the database
# backend of DATABASE_URL=postgres://… (psycopg) and the broker transport of
# CELERY_BROKER_URL=redis://… (redis, and packaging, which kombu needs only for it).
PRODUCTION_MODULES = (
    "psycopg",
    "redis",
    "django.db.backends.postgresql.base",
    "kombu.transport.redis",
)
# `make run` starts the Procfile with devtools/serve.py, which uses honcho's Procfile parser
# and printer; the Procfile names the commands.
MAKE_RUN_MODULES = ("honcho.environ", "honcho.printer", "devtools.serve")


def normalize(name: str) -> str:
    """A distribution name as PEP 503 compares them."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> dict[str, set[str]]:
    """{distribution: extras} of pyproject.toml's [project] dependencies."""
    declared = {}
    for spec in tomllib.loads(pyproject.read_text())["project"]["dependencies"]:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?", spec)
        extras = {normalize(e) for e in (m[2] or "").split(",") if e.strip()}
        declared.setdefault(normalize(m[1]), set()).update(extras)
    return declared


def locked_versions(lock: Path = ROOT / "requirements.lock") -> dict[str, str]:
    """{distribution: version} pinned in a pip-compile lock file."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock.read_text(), re.M)
    return {normalize(name): version for name, version in pins}


def third_party_imports(root: Path = ROOT) -> dict[str, list[str]]:
    """{top-level module: ["path:line", …]} for every absolute import of a module that is
    neither the standard library nor the portal's own, wherever in a file it stands."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top in sys.stdlib_module_names or top in PACKAGES:
                        continue
                    where = f"{path.relative_to(root)}:{node.lineno}"
                    found.setdefault(top, []).append(where)
    return found


def installed(module: str) -> bool:
    if module in sys.modules:  # some (kombu) replace their module object and lose its spec
        return True
    return importlib.util.find_spec(module) is not None


def import_problems(imports: dict[str, list[str]], declared: dict[str, set[str]]) -> list[str]:
    """The imported modules this environment lacks, or whose package pyproject.toml omits."""
    problems = []
    distributions = importlib.metadata.packages_distributions()
    for module, places in sorted(imports.items()):
        where = ", ".join(places[:3]) + (" …" if len(places) > 3 else "")
        if not installed(module):
            problems.append(
                f"missing module {module!r} (imported by {where}): requirements.lock does not "
                "install it; name its package in pyproject.toml dependencies and run make lock"
            )
            continue
        packages = {normalize(d) for d in distributions.get(module, ())}
        if not packages & declared.keys():
            names = ", ".join(sorted(packages)) or "?"
            problems.append(
                f"module {module!r} (imported by {where}) comes from {names}, which "
                "pyproject.toml dependencies do not name: it is installed only because another "
                "package needs it today"
            )
    return problems


def module_names(root: Path = ROOT) -> list[str]:
    """Every module of the portal's packages, from their files (importing comes later)."""
    names = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def module_import_problems(names: list[str]) -> list[str]:
    """Import every module after django.setup(); a missing package names its module."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ecrportal.settings")
    try:
        import django

        django.setup()
    except ImportError as e:
        return [f"missing module {e.name!r}: django.setup() failed: {e}"]
    failed: dict[str, list[str]] = {}  # the error's text: the modules it stops
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            reason = f"missing module {e.name!r}" if e.name else f"import error: {e}"
            failed.setdefault(reason, []).append(name)
        except Exception as e:  # e.g. a package that tolerates a missing one, then fails
            failed.setdefault(f"{type(e).__name__}: {e}", []).append(name)
    return [
        f"{reason}: {len(stopped)} module(s) fail to import ({', '.join(stopped[:4])}"
        f"{' …' if len(stopped) > 4 else ''})"
        for reason, stopped in failed.items()
    ]


def driver_problems() -> list[str]:
    """psycopg must bring its own libpq (psycopg-binary): the image has none to load."""
    try:
        import psycopg
    except ImportError:
        return []  # named by module_import_problems
    if psycopg.pq.__impl__ not in ("binary", "c"):
        return [
            f"missing module 'psycopg_binary': psycopg uses the {psycopg.pq.__impl__} "
            "libpq wrapper, which needs the system's libpq (absent from the image); "
            "requirements.lock must install psycopg-binary"
        ]
    return []


def command_problems(root: Path = ROOT) -> list[str]:
    commands = []
    for line in (root / "Procfile").read_text().splitlines():
        if ":" in line and not line.lstrip().startswith("#"):
            commands.append(line.partition(":")[2].split()[0])
    bin_dir = Path(sys.executable).parent
    return [
        f"missing command {c!r} in {bin_dir}: Procfile or make run starts it, "
        "requirements.lock does not install it"
        for c in commands
        if not (bin_dir / c).exists()
    ]


def main() -> int:
    sys.path.insert(0, str(ROOT))
    imports = third_party_imports()
    names = module_names()
    problems = import_problems(imports, declared_dependencies())
    problems += command_problems()
    problems += module_import_problems([*names, *PRODUCTION_MODULES, *MAKE_RUN_MODULES])
    problems += driver_problems()
    if problems:
        print(f"runtime check of {sys.prefix}: {len(problems)} problem(s)", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(
        f"runtime check of {sys.prefix}: {len(names)} modules of {', '.join(PACKAGES)} and "
        f"the production database and broker modules import; "
        f"{len(imports)} third-party modules installed and declared ({', '.join(sorted(imports))})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
