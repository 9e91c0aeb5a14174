"""Webhook secrets sealed at rest: ``webhook_secrets.secret`` widened and every stored secret sealed.

The sealing key is the one every process reads (``LIPSPLINE_SECRETS_KEY``, or the data
directory's ``secrets.key``): run the migration with the service's environment. The downgrade
opens them again (the earlier code signs with the stored value as it is).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from lipspline_platform.settings import Settings, get_settings
from lipspline_platform.webhooks import secret_store

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_SECRETS = sa.table("webhook_secrets", sa.column("tenant_id", sa.String), sa.column("secret", sa.String))


def _rewrite(transform: Callable[[Settings, str, str], str]) -> None:
    """Apply ``transform`` to every stored secret (the key is read only when there is one)."""
    connection = op.get_bind()
    rows = connection.execute(sa.select(_SECRETS.c.tenant_id, _SECRETS.c.secret)).all()
    if not rows:
        return
    settings = get_settings()
    for tenant_id, value in rows:
        new_value = transform(settings, tenant_id, value)
        if new_value != value:
            connection.execute(
                sa.update(_SECRETS).where(_SECRETS.c.tenant_id == tenant_id).values(secret=new_value)
            )


def _seal(settings: Settings, tenant_id: str, value: str) -> str:
    return value if secret_store.is_sealed(value) else secret_store.seal(settings, tenant_id, value)


def _open(settings: Settings, tenant_id: str, value: str) -> str:
    return secret_store.open_sealed(settings, tenant_id, value) if secret_store.is_sealed(value) else value


def upgrade() -> None:
    with op.batch_alter_table("webhook_secrets") as batch:
        batch.alter_column("secret", type_=sa.String(200), existing_type=sa.String(100), existing_nullable=False)
    _rewrite(_seal)


def downgrade() -> None:
    _rewrite(_open)
    with op.batch_alter_table("webhook_secrets") as batch:
        batch.alter_column("secret", type_=sa.String(100), existing_type=sa.String(200), existing_nullable=False)
