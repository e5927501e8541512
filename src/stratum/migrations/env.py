"""Alembic environment: runs on the connection handed over by stratum.store.db.Database.migrate,
or on a URL from the alembic config (for `alembic revision --autogenerate` during development)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from stratum.store.schema import load_all_tables

target_metadata = load_all_tables()
config = context.config
# Set by tools/new_migration.py --tables: generate a revision for these tables only, so tables
# still in development elsewhere in the tree stay out of it.
_only = config.attributes.get("include_tables")


def include_object(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    if not _only:
        return True
    table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
    return table is None or table in _only


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite", include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.attributes.get("connection_url") or config.get_main_option("sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata,
                          render_as_batch=conn.dialect.name == "sqlite", include_object=include_object)
        with context.begin_transaction():
            context.run_migrations()


run()
