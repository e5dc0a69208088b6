from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

import commtest.models  # noqa: F401
from commtest.clock import UTC
from commtest.db import current_revision, head_revision, make_engine, session_scope
from commtest.models import Organisation


def test_the_migrations_create_the_whole_schema(engine: Engine) -> None:
    assert current_revision(engine) == head_revision()
    names = set(sa.inspect(engine).get_table_names())
    assert set(SQLModel.metadata.tables) <= names


def test_the_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    # Types are compared loosely across dialects; tables, columns and indexes must match.
    structural = [d for d in diff if not (isinstance(d, list) or d[0] in ("modify_type",))]
    assert structural == []


def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(sqlite_url: str) -> None:
    eng = make_engine(sqlite_url)
    with eng.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    eng.dispose()


def test_a_durable_transaction_commits_with_synchronous_full_then_goes_back(sqlite_url: str) -> None:
    eng = make_engine(sqlite_url, poolclass=sa.pool.StaticPool)
    seen = []
    with session_scope(eng, durable=True) as s:
        seen.append(s.connection().exec_driver_sql("PRAGMA synchronous").scalar())
        s.add(Organisation(code="XX-TEST", name="Test", country="BE", languages=["en"], timezone="Europe/Brussels"))
    with eng.connect() as conn:
        seen.append(conn.exec_driver_sql("PRAGMA synchronous").scalar())
    assert seen == [2, 1]  # FULL inside, NORMAL after
    eng.dispose()


def test_a_failed_transaction_writes_nothing(engine: Engine) -> None:
    try:
        with session_scope(engine) as s:
            s.add(Organisation(code="XX-TEST", name="Test", country="BE", languages=["en"], timezone="Europe/Brussels"))
            s.flush()
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with session_scope(engine) as s:
        assert s.exec(select(Organisation)).all() == []


def test_times_come_back_as_aware_utc(engine: Engine) -> None:
    from commtest.models import Endpoint, ContactPoint, FieldOfWork

    when = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    with session_scope(engine) as s:
        org = Organisation(code="XX-TEST", name="Test", country="BE", languages=["en"], timezone="Europe/Brussels")
        f = FieldOfWork(code="crisis-desk", name="Crisis desk")
        s.add(org)
        s.add(f)
        s.flush()
        cp = ContactPoint(code="XX-TEST/crisis-desk", organisation_id=org.id, field_id=f.id, name="Desk")
        s.add(cp)
        s.flush()
        s.add(Endpoint(contact_point_id=cp.id, kind="email", address="desk@test.example", verified_at=when))
    with session_scope(engine) as s:
        ep = s.exec(select(Endpoint)).one()
        assert ep.verified_at == when
        assert ep.verified_at.tzinfo is not None


def test_the_database_refuses_to_change_or_delete_an_event(engine: Engine) -> None:
    import pytest

    from commtest.events import record_event

    with session_scope(engine) as s:
        record_event(s, at=datetime(2026, 4, 14, 8, 0, tzinfo=UTC), actor="test", kind="run.planned")
    for statement in ("UPDATE event SET kind = 'forged'", "DELETE FROM event"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine.begin() as conn:
                conn.exec_driver_sql(statement)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT kind FROM event").scalars().all() == ["run.planned"]
