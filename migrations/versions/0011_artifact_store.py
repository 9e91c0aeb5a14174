"""The artifact store: model weights, checkpoints and uploaded datasets move out of their rows.

New columns name each object (``weights_uri``, ``blob_uri``, ``content_uri``) and keep the
byte counts quotas add up; the byte columns become nullable. When this deployment has a
store (``LIPSPLINE_ARTIFACT_STORE_URL``, or ``artifacts/`` beside an embedded SQLite file:
``lipspline_platform/storage/artifacts.py``), every existing row's bytes are written there and
cleared from the row. The downgrade reads every object back into its row first.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from lipspline_platform.settings import get_settings
from lipspline_platform.storage import artifacts

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

#: (table, key column, bytes column, uri column, size column or None, artifact kind)
MOVED = [
    ("models", "id", "weights", "weights_uri", "weights_bytes", "weights"),
    ("job_checkpoints", "job_id", "blob", "blob_uri", None, "checkpoints"),
    ("datasets", "id", "content", "content_uri", "content_bytes", "datasets"),
]


def _store() -> artifacts.ArtifactStore | None:
    return artifacts.store_for(get_settings(), database_url=op.get_bind().engine.url.render_as_string(False))


def upgrade() -> None:
    for table, _, data, uri, size, _ in MOVED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(uri, sa.String(2000), nullable=True))
            if size is not None:
                batch.add_column(sa.Column(size, sa.BigInteger, nullable=True))
            if table != "datasets":  # datasets.content became nullable in 0010
                batch.alter_column(data, existing_type=sa.LargeBinary, nullable=True)
    connection = op.get_bind()
    for table, _, data, _, size, _ in MOVED:
        if size is not None:
            connection.execute(sa.text(f"UPDATE {table} SET {size} = length({data}) WHERE {data} IS NOT NULL"))
    store = _store()
    if store is None:
        return
    for table, key, data, uri, _, kind in MOVED:
        rows = connection.execute(sa.text(f"SELECT {key}, {data} FROM {table} WHERE {data} IS NOT NULL")).all()
        for row_key, blob in rows:
            location = store.put(f"{kind}/{row_key}", bytes(blob))
            connection.execute(sa.text(f"UPDATE {table} SET {uri} = :uri, {data} = NULL WHERE {key} = :key"),
                               {"uri": location, "key": row_key})


def downgrade() -> None:
    connection = op.get_bind()
    settings = get_settings()
    for table, key, data, uri, _, _ in MOVED:
        rows = connection.execute(sa.text(f"SELECT {key}, {uri} FROM {table} WHERE {uri} IS NOT NULL")).all()
        for row_key, location in rows:
            blob = artifacts.read(settings, None, location)
            connection.execute(sa.text(f"UPDATE {table} SET {data} = :blob, {uri} = NULL WHERE {key} = :key"),
                               {"blob": blob, "key": row_key})
    for table, _, data, uri, size, _ in MOVED:
        with op.batch_alter_table(table) as batch:
            if table != "datasets":
                batch.alter_column(data, existing_type=sa.LargeBinary, nullable=False)
            if size is not None:
                batch.drop_column(size)
            batch.drop_column(uri)
