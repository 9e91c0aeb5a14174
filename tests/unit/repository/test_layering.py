"""The house rules, read from the source: imports run one way, and one module writes a job's status.

Layers: ``lipspline`` (the ML core) <- ``lipspline_platform`` (settings, database, queue, job
lifecycle) <- ``service`` (the API) and ``worker`` (Celery), which never import each other;
``api_schemas`` is the contract everyone may read; ``migrations`` reads the platform's tables.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from import_graph import PACKAGES, imports_of, modules, package_graph

ROOT = Path(__file__).resolve().parents[3]
MODULES = modules(ROOT)

#: what each package may import among the project's packages
ALLOWED = {
    "api_schemas": set(),
    # the SDK and user CLI: installable without torch (`pip install 'lipspline[client]'`)
    "lipspline_client": {"api_schemas"},
    # the core reads no web code, not even the SDK (the recipes' remote trainer lives in service/)
    "lipspline": {"api_schemas"},
    "lipspline_platform": {"api_schemas", "lipspline"},
    "migrations": {"lipspline_platform"},
    "service": {"api_schemas", "lipspline_client", "lipspline", "lipspline_platform"},  # the CLI entry point
    "worker": {"api_schemas", "lipspline", "lipspline_platform"},
}
#: third-party web, queue and database libraries the ML core must not touch
SERVICE_LIBRARIES = {"fastapi", "starlette", "uvicorn", "celery", "kombu", "sqlalchemy", "alembic", "redis", "psycopg"}


def _violations_of(package: str) -> list[str]:
    found = []
    for name, path in MODULES.items():
        if name.split(".")[0] != package:
            continue
        for target, _, line in imports_of(name, path):
            top = target.split(".")[0]
            if top in PACKAGES and top != package and top not in ALLOWED[package]:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
            if package == "lipspline" and top in SERVICE_LIBRARIES:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target} (web/queue/DB code in the core)")
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_one_way(package: str) -> None:
    assert _violations_of(package) == []


def test_package_graph_has_no_cycle() -> None:
    graph = package_graph(ROOT)
    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", f"import cycle: {' -> '.join([*path, node])}"
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, [*path, node])
        state[node] = "done"

    for package in sorted(graph):
        visit(package, [])


def _is_submodule(module: str, name: str) -> bool:
    """A Python file, a package or a compiled extension (``name.cpython-311-....so``) of ``module``."""
    folder = ROOT.joinpath(*module.split("."))
    compiled = any(folder.glob(f"{name}.*.so")) or (folder / f"{name}.c").is_file()  # built or not yet built
    return (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file() or compiled


def test_no_private_name_is_imported_across_modules() -> None:
    """``from m import _x`` is allowed only for a private submodule of the importer's own package."""
    found = []
    for name, path in MODULES.items():
        for target, names, line in imports_of(name, path):
            if target.split(".")[0] not in PACKAGES or target == name:
                continue
            for imported in names:
                if not imported.startswith("_") or imported.startswith("__"):
                    continue
                if _is_submodule(target, imported) and name.startswith(target + "."):
                    continue
                found.append(f"{path.relative_to(ROOT)}:{line} imports {imported} from {target}")
    assert found == []


def _status_writes(path: Path) -> list[int]:
    """Lines that write a job's status: ``x.status = ...``, ``status=`` in ``JobRow(...)`` or ``.values(...)``,
    a ``"status"`` key in a dict passed to ``.values``, or ``setattr(x, "status", ...)``."""
    tree = ast.parse(path.read_text())
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    owner = getattr(sub, "value", None)
                    if isinstance(sub, ast.Attribute) and sub.attr == "status" and getattr(owner, "id", "") != "self":
                        lines.append(node.lineno)
        if isinstance(node, ast.Call):
            func = node.func
            callee = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if callee in ("JobRow", "values") and any(k.arg == "status" for k in node.keywords):
                lines.append(node.lineno)
            if callee == "values":
                for arg in [*node.args, *(k.value for k in node.keywords if k.arg is None)]:
                    for sub in ast.walk(arg):
                        if isinstance(sub, ast.Dict) and any(
                            isinstance(k, ast.Constant) and k.value == "status" for k in sub.keys
                        ):
                            lines.append(node.lineno)
            if callee == "setattr" and len(node.args) >= 2:
                key = node.args[1]
                if not isinstance(key, ast.Constant) or key.value == "status":
                    lines.append(node.lineno)
    return lines


def test_only_the_lifecycle_writes_a_jobs_status() -> None:
    lifecycle = ROOT / "lipspline_platform" / "jobs" / "lifecycle.py"
    offenders = []
    for name, path in MODULES.items():
        if path == lifecycle or name.split(".")[0] not in ("service", "worker", "lipspline_platform"):
            continue
        offenders += [f"{path.relative_to(ROOT)}:{line}" for line in _status_writes(path)]
    assert offenders == []
    assert _status_writes(lifecycle), "the checker finds the lifecycle's own writes (it can fail)"


def test_importing_the_api_builds_no_celery_app() -> None:
    import subprocess
    import sys

    probe = (
        "import celery.app.base as base; made = []; orig = base.Celery.__init__\n"
        "def spy(self, *a, **k): made.append(1); orig(self, *a, **k)\n"
        "base.Celery.__init__ = spy\n"
        "import service.app, service.cli, lipspline_platform.jobs.queue\n"
        "assert not made, 'a Celery app was built at import'\n"
        "import sys; assert 'worker' not in sys.modules, 'the API imported the worker package'\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=ROOT)


def test_no_import_cycle_between_modules() -> None:
    """Not only packages: no two modules import each other, directly or around a loop, counting
    imports inside functions too (a function-level import that only hides a circle is one)."""
    from import_graph import cycles, module_graph

    assert cycles(module_graph(ROOT)) == []


def test_the_client_imports_without_the_server_install() -> None:
    """``pip install 'lipspline[client]'`` has no torch, FastAPI, SQLAlchemy or Celery: the SDK and
    the user CLI must import (and the ``lipspline`` entry point dispatch to them) without them."""
    import subprocess
    import sys

    blocked = ["torch", "fastapi", "sqlalchemy", "celery", "pydantic_settings", "pyarrow", "scipy"]
    code = (f"import sys\nfor m in {blocked!r}: sys.modules[m] = None\n"
            "import lipspline_client, lipspline_client.cli, service.cli\n"
            "assert service.cli.main(['datasets', '--help']) == 0\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_no_marker_for_a_tool_that_does_not_run() -> None:
    """No formatter runs and ruff does not select the ANN rules (``pyproject.toml``), so a
    ``# fmt: skip`` or ``# noqa: ANN…`` says nothing; they had come back after being removed once."""
    markers = ("# fmt: skip", "# fmt: off", "# noqa: ANN")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("api_schemas", "lipspline", "lipspline_client", "lipspline_platform", "migrations", "service",
                       "worker", "tests", "bench")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if path != Path(__file__).resolve() and any(marker in line for marker in markers)
    ]
    assert found == []
