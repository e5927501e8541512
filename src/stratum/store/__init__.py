"""Durable store: SQLAlchemy Core tables (one module per service) and Alembic migrations."""
