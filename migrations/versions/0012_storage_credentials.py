"""A tenant's own object-store credentials: ``storage_credentials``, one sealed row per tenant.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storage_credentials",
        sa.Column("tenant_id", sa.String(32), sa.ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("sealed", sa.String(8000), nullable=False),
        sa.Column("access_key_hint", sa.String(8), nullable=False),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("has_session_token", sa.Boolean, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("storage_credentials")
