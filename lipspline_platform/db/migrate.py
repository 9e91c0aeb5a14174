"""Run Alembic migrations from code, so `lipspline serve` and `lipspline db upgrade` need no alembic.ini."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config

# Located, not imported: the migrations read the tables from this package, so importing
# them here would make the two packages import each other.
MIGRATIONS_DIR = Path(importlib.util.find_spec("migrations").origin).resolve().parent  # type: ignore[union-attr, arg-type]


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # '%' is ConfigParser interpolation syntax; URLs with escaped passwords contain it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
