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


@db_group.command("rebuild-facts")
@click.option("--run", "run_id", type=int, default=None, help="Only this run (default: every closed run).")
def db_rebuild_facts(run_id: int | None) -> None:
    """Recompute the check and verdict facts of closed runs from the event log.

    The facts are derived data (written once when a run closes); the event log is the truth.
    Run this after an upgrade that changed how facts are derived, or to repair them."""
    from commtest.db import run_write
    from commtest.facts import facts_of_run, write_run_facts
    from commtest.models import RunStatus, TestRun
    from scheduler.specs import spec_for_revision
    from sqlmodel import col, select

    app = app_context()
    closed = (RunStatus.completed.value, RunStatus.aborted.value)
    with app.engine.connect() as conn:
        query = select(TestRun.id).where(col(TestRun.status).in_(closed))
        if run_id is not None:
            query = query.where(TestRun.id == run_id)
        ids = [r for (r,) in conn.execute(query)]

    def rebuild(s, rid: int) -> int:  # type: ignore[no-untyped-def]
        run = s.get(TestRun, rid)
        facts = facts_of_run(s.connection(), rid, spec_for_revision(s, run.revision_id).fact_rules())
        write_run_facts(s, facts, run.fire_at)
        return len(facts.checks)

    checks = sum(run_write(app.engine, lambda s, rid=rid: rebuild(s, rid)) for rid in ids)
    # The figures of settled months came from the facts just rebuilt: computed again when next needed.
    from commtest.models import MonthRollup

    run_write(app.engine, lambda s: s.connection().execute(MonthRollup.__table__.delete()))  # type: ignore[attr-defined]
    click.echo(f"rebuilt the facts of {len(ids)} closed run(s): {checks} check(s); month figures cleared")
