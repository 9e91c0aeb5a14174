"""The model registry: registered model names, their numbered versions, aliases and the
history of alias moves; ``jobs.register_as`` (a job that registers its model on success).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("description", sa.Text, nullable=True),
        sa.Column("last_version", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_registered_models_tenant_name"),
    )
    op.create_index("ix_registered_models_tenant_id", "registered_models", ["tenant_id"])
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "registered_model_id",
            sa.String(32),
            sa.ForeignKey("registered_models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("model_id", sa.String(32), sa.ForeignKey("models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("dataset_sha256", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("registered_model_id", "version", name="uq_model_versions_number"),
        sa.UniqueConstraint("registered_model_id", "model_id", name="uq_model_versions_model"),
    )
    op.create_index("ix_model_versions_registered_model_id", "model_versions", ["registered_model_id"])
    op.create_index("ix_model_versions_model_id", "model_versions", ["model_id"])
    op.create_table(
        "model_aliases",
        sa.Column(
            "registered_model_id",
            sa.String(32),
            sa.ForeignKey("registered_models.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column(
            "version_id", sa.String(32), sa.ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "alias_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "registered_model_id",
            sa.String(32),
            sa.ForeignKey("registered_models.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(40), nullable=False),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_alias_events_registered_model_id", "alias_events", ["registered_model_id"])
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("register_as", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("register_as")
    op.drop_index("ix_alias_events_registered_model_id", table_name="alias_events")
    op.drop_table("alias_events")
    op.drop_table("model_aliases")
    op.drop_index("ix_model_versions_model_id", table_name="model_versions")
    op.drop_index("ix_model_versions_registered_model_id", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_index("ix_registered_models_tenant_id", table_name="registered_models")
    op.drop_table("registered_models")
