"""Alembic migrations; `service.db.migrate` runs them programmatically."""
