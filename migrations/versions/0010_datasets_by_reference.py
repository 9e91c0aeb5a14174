"""Datasets by reference: ``datasets.uri``, ``objects``, ``statistics``; ``content`` may be null.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets") as batch:
        batch.add_column(sa.Column("uri", sa.String(2000), nullable=True))
        batch.add_column(sa.Column("objects", sa.JSON, nullable=True))
        batch.add_column(sa.Column("statistics", sa.JSON, nullable=True))
        batch.alter_column("content", existing_type=sa.LargeBinary, nullable=True)


def downgrade() -> None:
    # a dataset by reference has no bytes to keep: it cannot exist under the earlier schema
    op.execute("DELETE FROM datasets WHERE content IS NULL")
    with op.batch_alter_table("datasets") as batch:
        batch.alter_column("content", existing_type=sa.LargeBinary, nullable=False)
        batch.drop_column("statistics")
        batch.drop_column("objects")
        batch.drop_column("uri")
