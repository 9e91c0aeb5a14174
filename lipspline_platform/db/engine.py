"""Engine and session creation for SQLite (embedded) and PostgreSQL (production)."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Session", "add_engine_hook", "database_answers", "dispose_all", "get_engine", "remove_engine_hook",
           "session_scope"]
#: ``Session`` is the unit of work the API passes to domain functions (``service.security.deps.DbSession``): routers
#: name it from here, never from SQLAlchemy (``tests/unit/service/test_router_structure.py``)

_lock = threading.Lock()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}
#: called with every engine, those made already and those to come (tracing instruments them)
_engine_hooks: list[Callable[[Engine], None]] = []


def add_engine_hook(hook: Callable[[Engine], None]) -> None:
    with _lock:
        _engine_hooks.append(hook)
        engines = list(_engines.values())
    for engine in engines:
        hook(engine)


def remove_engine_hook(hook: Callable[[Engine], None]) -> None:
    with _lock:
        if hook in _engine_hooks:
            _engine_hooks.remove(hook)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets the API read while the worker writes progress; busy_timeout makes a
    # writer wait for the lock instead of failing with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _owner_only(url: str) -> None:
    """Create the SQLite file 0600 (or tighten it): it holds key hashes and webhook secrets. SQLite gives
    its -wal and -shm files the database file's permissions."""
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    with contextlib.suppress(OSError):  # a read-only or foreign file: SQLite reports what matters
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
        if os.stat(path).st_uid == os.getuid():
            os.chmod(path, 0o600)


def get_engine(url: str) -> Engine:
    """One engine per URL per process (engines pool connections)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                _owner_only(url)
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
                event.listen(engine, "connect", _sqlite_pragmas)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
            _engines[url] = engine
            _factories[url] = sessionmaker(bind=engine, expire_on_commit=False)
            for hook in _engine_hooks:
                hook(engine)
        return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A transaction: committed on success, rolled back on any exception (no half-written rows)."""
    get_engine(url)
    session = _factories[url]()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def database_answers(url: str) -> bool:
    """Whether the database answers ``SELECT 1`` (the readiness probe): a probe reports, it does not raise."""
    try:
        with get_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def dispose_all() -> None:
    """Drop pooled connections: a forked worker child must not reuse its parent's sockets."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)
        _engines.clear()
        _factories.clear()
