"""Webhook events that are not a job's: ``webhook_deliveries.job_id`` becomes nullable.

Sweeps (finished, cancelled) and the registry (version created, alias moved) send events
through the same outbox as a job's final event (``api_schemas/webhook_events.py``); their
deliveries have no job. The downgrade deletes those deliveries (and their attempts): the
column cannot be NOT NULL again while they are there.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER a column's nullability; on PostgreSQL it is plain ALTER TABLE
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("job_id", existing_type=sa.String(32), nullable=True)


def downgrade() -> None:
    jobless = (
        sa.select(sa.column("id"))
        .select_from(sa.table("webhook_deliveries", sa.column("id"), sa.column("job_id")))
        .where(sa.column("job_id").is_(None))
    )
    op.execute(sa.table("webhook_attempts", sa.column("delivery_id")).delete().where(
        sa.column("delivery_id").in_(jobless)))
    op.execute(sa.table("webhook_deliveries", sa.column("job_id")).delete().where(sa.column("job_id").is_(None)))
    with op.batch_alter_table("webhook_deliveries") as batch:
        batch.alter_column("job_id", existing_type=sa.String(32), nullable=False)
