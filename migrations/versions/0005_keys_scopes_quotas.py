"""Scopes, names and expiry on API keys; tenant quotas and revocation; the request id of a job.

Keys made before this revision get the scopes ``read predict train``: they could do all of
that before, and none could manage keys (that needed a shell on a host with database
access), so none becomes an ``admin`` key by upgrading.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
#: the scopes of keys that existed before scopes did
LEGACY_SCOPES = "read predict train"


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("scopes", sa.String(64), nullable=False, server_default=LEGACY_SCOPES))
        batch.add_column(sa.Column("name", sa.String(100), nullable=True))
        batch.add_column(sa.Column("expires_at", TS, nullable=True))
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scopes", server_default=None)
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("revoked_at", TS, nullable=True))
        batch.add_column(sa.Column("quota_max_active_jobs", sa.Integer, nullable=True))
        batch.add_column(sa.Column("quota_max_stored_bytes", sa.BigInteger, nullable=True))
        batch.add_column(sa.Column("quota_max_models", sa.Integer, nullable=True))
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("request_id")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("quota_max_models")
        batch.drop_column("quota_max_stored_bytes")
        batch.drop_column("quota_max_active_jobs")
        batch.drop_column("revoked_at")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("expires_at")
        batch.drop_column("name")
        batch.drop_column("scopes")
