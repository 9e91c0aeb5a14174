"""Alembic migrations; `lipspline_platform.db.migrate` runs them programmatically."""
