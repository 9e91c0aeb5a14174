"""The embedded data directory and database file are readable by their owner only.

They hold API key hashes, webhook secrets and every uploaded dataset: a world-readable 0644
SQLite file (as before) let any local user read them.
"""

from __future__ import annotations

import stat
from pathlib import Path

from lipspline_platform.db.engine import dispose_all, get_engine
from lipspline_platform.settings import Settings


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_data_dir_is_0700_and_its_database_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "fresh" / "data")
    settings.ensure_dirs()
    assert _mode(settings.data_dir) == 0o700
    engine = get_engine(settings.resolved_database_url)
    with engine.connect() as connection:
        connection.exec_driver_sql("create table t (x integer)")
    database = settings.data_dir / "lipspline.sqlite3"
    assert _mode(database) == 0o600
    dispose_all()


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    database = tmp_path / "old.sqlite3"
    database.touch(mode=0o644)
    database.chmod(0o644)
    get_engine(f"sqlite:///{database}")
    assert _mode(database) == 0o600
    dispose_all()
