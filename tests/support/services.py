"""External servers for integration and end-to-end tests: PostgreSQL and Redis.

When a server is unreachable a test skips with the reason, except when
``LIPSPLINE_REQUIRE_SERVICES=1`` (set by ``.ci/run``): then it fails, so CI
can never pass by skipping.
"""

from __future__ import annotations

import os
import uuid

import pytest

POSTGRES_ADMIN_URL = os.environ.get("LIPSPLINE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_BASE_URL = os.environ.get("LIPSPLINE_TEST_REDIS", "redis://127.0.0.1:6379")


def services_required() -> bool:
    return os.environ.get("LIPSPLINE_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    if services_required():
        pytest.fail(f"{reason} (LIPSPLINE_REQUIRE_SERVICES=1, so this is a failure, not a skip)")
    pytest.skip(reason)


def fresh_postgres_database() -> tuple[str, callable]:
    """Create an empty database for one test module; returns its URL and a drop function."""
    from sqlalchemy import create_engine, text

    try:
        admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            name = f"lipspline_test_{uuid.uuid4().hex[:12]}"
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        unavailable(f"PostgreSQL unreachable at {POSTGRES_ADMIN_URL}: {type(exc).__name__}: {exc}")
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name

    def drop() -> None:
        from lipspline_platform.db.engine import dispose_all

        dispose_all()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return url, drop


def fresh_redis_url(db: int) -> str:
    """A Redis database number, flushed, so no message from an earlier run is delivered."""
    import redis

    url = f"{REDIS_BASE_URL}/{db}"
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except Exception as exc:
        unavailable(f"Redis unreachable at {REDIS_BASE_URL}: {type(exc).__name__}: {exc}")
    return url
