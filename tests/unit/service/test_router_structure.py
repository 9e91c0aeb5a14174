"""Routers only parse, call and encode: the SQL is the domain modules' in ``lipspline_platform/``.

Read from the source: no module of ``service/routers/`` imports SQLAlchemy (``sqlalchemy`` or any
of its submodules, ``Session`` included: a router names the unit of work as
``lipspline_platform.db.engine.Session``, or only through ``service.security.deps.DbSession``), none calls
a session's query or write methods itself, and no router imports another router.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
ROUTERS = ROOT / "service" / "routers"
#: what a session does that is a domain module's business (queries, writes, the transaction)
SESSION_METHODS = {"get", "execute", "scalars", "scalar", "add", "add_all", "delete", "flush", "merge", "query",
                   "commit", "rollback", "refresh"}
#: how a session is called in the routers
SESSION_NAMES = {"session", "db", "db_session"}


def _routers() -> list[Path]:
    return sorted(ROUTERS.glob("*.py"))


def _problems(path: Path, root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            found += [f"{where} imports {name}" for name in names if name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            if node.module.split(".")[0] == "sqlalchemy":
                found.append(f"{where} imports from {node.module}")
            if node.module == "service.routers" or node.module.startswith("service.routers."):
                found.append(f"{where} imports from another router ({node.module})")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in SESSION_NAMES
            and node.func.attr in SESSION_METHODS
        ):
            found.append(f"{where} calls {node.func.value.id}.{node.func.attr}() (a domain module's job)")
    return found


@pytest.mark.parametrize("path", _routers(), ids=lambda path: path.name)
def test_routers_hold_no_sql(path: Path) -> None:
    assert _problems(path) == []


def test_the_check_sees_what_it_forbids(tmp_path: Path) -> None:
    """The checker itself: each forbidden form is reported (so an empty answer above means something)."""
    sample = tmp_path / "sample_router.py"
    sample.write_text(
        "import sqlalchemy\n"
        "from sqlalchemy.orm import Session\n"
        "from service.routers.webhooks import router\n"
        "def route(session):\n"
        "    session.get(object, 'x')\n"
        "    session.execute('SELECT 1')\n"
    )
    assert len(_problems(sample, tmp_path)) == 5, _problems(sample, tmp_path)
