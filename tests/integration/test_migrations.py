"""Migrations: upgrade from empty and downgrade back, on SQLite and PostgreSQL, and the
migrated schema matches the ORM tables (so code and migrations cannot drift apart)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from lipspline_platform.db import migrate
from lipspline_platform.db.tables import Base
from lipspline_platform.settings import get_settings
from lipspline_platform.webhooks import secret_store
from tests.support.services import fresh_postgres_database

pytestmark = pytest.mark.integration
BEFORE_REGISTRY = {"datasets", "jobs", "job_epochs", "models", "tenants", "api_keys", "job_checkpoints",
                   "idempotency_keys"}
REGISTRY = {"registered_models", "model_versions", "model_aliases", "alias_events"}
EVENTS_WEBHOOKS = {"job_events", "webhook_secrets", "webhook_endpoints", "webhook_deliveries", "webhook_attempts"}
SWEEPS = {"sweeps", "sweep_trials"}
LABELS = {"resource_tags"}
STORAGE_CREDENTIALS = {"storage_credentials"}
TABLES = BEFORE_REGISTRY | REGISTRY | EVENTS_WEBHOOKS | SWEEPS | LABELS | STORAGE_CREDENTIALS


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    url, drop = fresh_postgres_database()
    try:
        yield url
    finally:
        drop()


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_from_empty_and_downgrade_back(database_url: str) -> None:
    assert _tables(database_url) == set()
    migrate.upgrade(database_url)
    assert _tables(database_url) == TABLES
    migrate.downgrade(database_url, "base")
    assert _tables(database_url) == set()
    migrate.upgrade(database_url)  # and up again: downgrade left nothing behind
    assert _tables(database_url) == TABLES


def _columns(url: str, table: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {column["name"] for column in inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def test_registry_migration_down_and_up_again(database_url: str) -> None:
    """0003 alone: its downgrade removes the registry tables and ``jobs.register_as``, and nothing else."""
    migrate.upgrade(database_url)
    assert "register_as" in _columns(database_url, "jobs")
    migrate.downgrade(database_url, "0002")
    assert _tables(database_url) == BEFORE_REGISTRY  # 0004-0006 went first: they come after 0003
    assert "register_as" not in _columns(database_url, "jobs")
    migrate.upgrade(database_url)
    assert _tables(database_url) == TABLES and "register_as" in _columns(database_url, "jobs")


def test_events_webhooks_migration_down_and_up_again(database_url: str) -> None:
    """0004 alone: its downgrade removes the event and webhook tables and ``jobs.notify_url``, nothing else."""
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "0003")
    assert _tables(database_url) == BEFORE_REGISTRY | REGISTRY
    assert "notify_url" not in _columns(database_url, "jobs") and "register_as" in _columns(database_url, "jobs")
    migrate.upgrade(database_url)
    assert _tables(database_url) == TABLES and "notify_url" in _columns(database_url, "jobs")


def test_migrated_schema_matches_the_orm_tables(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_sweeps_migration_down_and_up_again(database_url: str) -> None:
    """0006 alone: its downgrade removes the sweep tables and nothing else."""
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "0005")
    assert _tables(database_url) == BEFORE_REGISTRY | REGISTRY | EVENTS_WEBHOOKS
    migrate.upgrade(database_url)
    assert _tables(database_url) == TABLES


def test_sealing_migration_seals_stored_secrets_and_its_downgrade_opens_them(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0007: a secret stored in the clear by 0006 is sealed under the configured key, and opened again going down."""
    monkeypatch.setenv("LIPSPLINE_SECRETS_KEY", secret_store.new_key_text())
    migrate.upgrade(database_url, "0006")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 't1', '2026-12-06')"))
            connection.execute(text("INSERT INTO webhook_secrets (tenant_id, secret, created_at) "
                                    "VALUES ('t1', 'whsec_plain', '2026-12-06')"))

        def stored() -> str:
            with engine.connect() as connection:
                return connection.execute(text("SELECT secret FROM webhook_secrets")).scalar_one()

        migrate.upgrade(database_url)
        sealed = stored()
        assert secret_store.is_sealed(sealed) and "plain" not in sealed
        assert secret_store.open_sealed(get_settings(), "t1", sealed) == "whsec_plain"
        migrate.downgrade(database_url, "0006")
        assert stored() == "whsec_plain"
    finally:
        engine.dispose()


def test_labels_migration_down_and_up_again(database_url: str) -> None:
    """0008 alone: its downgrade removes ``resource_tags`` and the label columns, and keeps every row;
    an existing row gets ``tags = []`` on the way up."""
    migrate.upgrade(database_url, "0007")
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', :at)"),
                               {"at": "2026-01-01 00:00:00+00:00"})
            connection.execute(text(
                "INSERT INTO sweeps (id, tenant_id, request, plan, status, launched, created_at, updated_at) "
                "VALUES ('s', 't', '{}', '[]', 'running', 0, :at, :at)"), {"at": "2026-01-01 00:00:00+00:00"})
        migrate.upgrade(database_url)
        with engine.connect() as connection:
            row = connection.execute(text("SELECT name, tags, description FROM sweeps WHERE id = 's'")).one()
        assert row[0] is None and row[2] is None and row[1] in ([], "[]")
    finally:
        engine.dispose()
    for table in ("jobs", "models", "sweeps"):
        assert {"name", "tags", "description"} <= _columns(database_url, table)
    assert {"tags", "description"} <= _columns(database_url, "datasets")
    migrate.downgrade(database_url, "0007")
    assert _tables(database_url) == TABLES - LABELS - STORAGE_CREDENTIALS
    for table in ("jobs", "models", "sweeps", "datasets"):
        assert not {"tags", "description"} & _columns(database_url, table), table
    assert "name" not in _columns(database_url, "jobs") and "name" in _columns(database_url, "datasets")
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM sweeps")).scalar() == 1
    finally:
        engine.dispose()
    migrate.upgrade(database_url)
    assert _tables(database_url) == TABLES


def _nullable(url: str, table: str, column: str) -> bool:
    engine = create_engine(url)
    try:
        return next(c["nullable"] for c in inspect(engine).get_columns(table) if c["name"] == column)
    finally:
        engine.dispose()


def test_webhook_events_migration_down_and_up_again(database_url: str) -> None:
    """0009 alone: deliveries without a job are allowed; its downgrade deletes them (and their attempts), and
    makes ``webhook_deliveries.job_id`` required again, keeping a job's deliveries."""
    migrate.upgrade(database_url)
    assert _nullable(database_url, "webhook_deliveries", "job_id")
    at = {"at": "2026-01-01 00:00:00+00:00"}
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO tenants (id, name, created_at) VALUES ('t', 't', :at)"), at)
            connection.execute(text(
                "INSERT INTO jobs (id, tenant_id, config, status, queue, cancel_requested, progress, attempts, "
                "created_at, updated_at) VALUES ('j', 't', '{}', 'succeeded', 'cpu', false, '{}', 1, :at, :at)"), at)
            for delivery, job in (("with-job", "'j'"), ("jobless", "NULL")):
                connection.execute(text(
                    "INSERT INTO webhook_deliveries (id, tenant_id, job_id, url, event, payload, state, attempts, "
                    f"next_attempt_at, created_at) VALUES ('{delivery}', 't', {job}, 'http://h/', 'e', '{{}}', "
                    "'delivered', 1, :at, :at)"), at)
                connection.execute(text(
                    "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, duration_s, succeeded) "
                    f"VALUES ('{delivery}', 1, :at, 0.1, true)"), at)
        migrate.downgrade(database_url, "0008")
        assert not _nullable(database_url, "webhook_deliveries", "job_id")
        with engine.connect() as connection:
            assert connection.execute(text("SELECT id FROM webhook_deliveries")).scalars().all() == ["with-job"]
            assert connection.execute(text("SELECT delivery_id FROM webhook_attempts")).scalars().all() == ["with-job"]
    finally:
        engine.dispose()
    migrate.upgrade(database_url)
    assert _nullable(database_url, "webhook_deliveries", "job_id") and _tables(database_url) == TABLES


def test_storage_credentials_migration_down_and_up_again(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.downgrade(database_url, "0011")
    assert "storage_credentials" not in _tables(database_url)
    migrate.upgrade(database_url)
    assert _columns(database_url, "storage_credentials") == {
        "tenant_id", "sealed", "access_key_hint", "region", "has_session_token", "updated_at"}
