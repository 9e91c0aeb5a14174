"""Names, tags and descriptions: columns on datasets, jobs, models and sweeps, and ``resource_tags``.

Each resource gets ``tags`` (a JSON list, ``[]`` for every existing row) and ``description``;
jobs, models and sweeps get ``name`` (datasets have had one since 0001). ``resource_tags``
holds one row per (kind, tag, resource id): the index the lists' ``?tag=`` filter reads with
a plain ``IN`` subquery, the same on SQLite and PostgreSQL. The downgrade drops all of it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

#: the tables that get the columns, and whether they get ``name`` too
_RESOURCES = (("datasets", False), ("jobs", True), ("models", True), ("sweeps", True))


def upgrade() -> None:
    for table, named in _RESOURCES:
        # batch mode: SQLite cannot ALTER a column it has just added; on PostgreSQL it is plain ALTER TABLE
        with op.batch_alter_table(table) as batch:
            if named:
                batch.add_column(sa.Column("name", sa.String(100), nullable=True))
            batch.add_column(sa.Column("tags", sa.JSON, nullable=False, server_default=sa.text("'[]'")))
            batch.add_column(sa.Column("description", sa.Text, nullable=True))
    op.create_table(
        "resource_tags",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("tag", sa.String(50), primary_key=True),
        sa.Column("resource_id", sa.String(32), primary_key=True),
    )
    op.create_index("ix_resource_tags_resource", "resource_tags", ["kind", "resource_id"])


def downgrade() -> None:
    op.drop_index("ix_resource_tags_resource", table_name="resource_tags")
    op.drop_table("resource_tags")
    for table, named in reversed(_RESOURCES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("description")
            batch.drop_column("tags")
            if named:
                batch.drop_column("name")
