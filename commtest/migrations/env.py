"""Alembic environment. Used programmatically by ``commtest db upgrade`` (see commtest.db)."""
from __future__ import annotations

import sqlmodel  # noqa: F401  -- migration scripts refer to sqlmodel types
from alembic import context
from sqlalchemy import engine_from_config, pool

import commtest.models  # noqa: F401  -- registers the tables on the metadata
from sqlmodel import SQLModel

config = context.config
target_metadata = SQLModel.metadata


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section) or {}, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
