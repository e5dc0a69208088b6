"""``commtest db upgrade|current``."""
from __future__ import annotations

import click

from commtest.db import current_revision, head_revision, make_engine, upgrade

from .base import app_context, cli


@cli.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply the migrations up to REVISION (default: the newest)."""
    app = app_context()
    engine = make_engine(app.settings.database_url)
    try:
        before = current_revision(engine)
        upgrade(engine, revision)
        after = current_revision(engine)
    finally:
        engine.dispose()
    click.echo(f"schema {before or '(empty)'} -> {after}")


@db_group.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the newest one."""
    app = app_context()
    engine = make_engine(app.settings.database_url)
    try:
        click.echo(f"database: {current_revision(engine) or '(empty)'}; newest: {head_revision()}")
    finally:
        engine.dispose()
