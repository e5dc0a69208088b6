from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

import commtest.models  # noqa: F401
from commtest.clock import UTC
from commtest.db import (
    current_revision,
    head_revision,
    make_engine,
    read_connection,
    read_session,
    run_write,
    session_scope,
    write_connection,
)
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


def test_each_write_transaction_commits_with_the_synchronous_it_asked_for(sqlite_url: str) -> None:
    """A durable write commits with FULL and a plain one with NORMAL, on the same pooled
    connection in any order: the setting follows each write, not the one before it."""
    eng = make_engine(sqlite_url, poolclass=sa.pool.StaticPool)
    seen = []
    for durable in (True, True, False, True, False, False):
        with session_scope(eng, durable=durable) as s:
            seen.append(s.connection().exec_driver_sql("PRAGMA synchronous").scalar())
    with write_connection(eng, durable=True) as conn:
        seen.append(conn.exec_driver_sql("PRAGMA synchronous").scalar())
        conn.execute(sa.insert(Organisation.__table__), {  # type: ignore[attr-defined]
            "code": "XX-TEST", "name": "Test", "country": "BE", "languages": ["en"], "timezone": "Europe/Brussels",
            "role": "participant", "notes": "", "names": {}})
    assert seen == [2, 2, 1, 2, 1, 1, 2]  # FULL, NORMAL
    with eng.connect() as conn:
        assert conn.execute(sa.select(Organisation.code)).scalars().all() == ["XX-TEST"]  # committed
    eng.dispose()


def test_a_failed_connection_write_writes_nothing(engine: Engine) -> None:
    with pytest.raises(RuntimeError):
        with write_connection(engine, durable=True) as conn:
            conn.execute(sa.insert(Organisation.__table__), {  # type: ignore[attr-defined]
                "code": "XX-TEST", "name": "Test", "country": "BE", "languages": ["en"],
                "timezone": "Europe/Brussels", "role": "participant", "notes": "", "names": {}})
            raise RuntimeError("boom")
    with engine.connect() as conn:
        assert conn.execute(sa.select(Organisation.code)).all() == []


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


# --- lost races on PostgreSQL are run again, never surfaced ------------------------------------


@pytest.fixture
def pg_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    templates = request.getfixturevalue("pg_templates")
    if templates is None:
        pytest.skip("PostgreSQL not configured: set COMMTEST_TEST_POSTGRES_URL to run this")
    url = templates.fresh()
    eng = make_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE race_probe (id integer PRIMARY KEY, n integer NOT NULL)")
        conn.exec_driver_sql("INSERT INTO race_probe VALUES (1, 0), (2, 0)")
    yield eng
    eng.dispose()
    templates.drop(url)


def _bump(s: Session, row: int) -> None:
    s.execute(sa.text("UPDATE race_probe SET n = n + 1 WHERE id = :id"), {"id": row})


def _counts(engine: Engine) -> dict[int, int]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT id, n FROM race_probe")).all())  # type: ignore[arg-type]


def test_run_write_runs_the_work_again_after_a_real_postgresql_deadlock(pg_engine: Engine) -> None:
    # Two writers lock the same two rows in opposite orders: PostgreSQL ends one with 40P01.
    both_hold_one = threading.Barrier(2, timeout=30)
    lost: list[str] = []
    results: dict[str, str] = {}
    errors: list[BaseException] = []

    def writer(name: str, first: int, second: int) -> None:
        attempts = 0

        def work(s: Session) -> str:
            nonlocal attempts
            attempts += 1
            _bump(s, first)
            if attempts == 1:
                both_hold_one.wait()  # only the first time: a retry must not wait for the other
            _bump(s, second)
            return f"{name} after {attempts} attempt(s)"

        try:
            results[name] = run_write(pg_engine, work, on_retry=lambda exc: lost.append(
                getattr(getattr(exc, "orig", None), "sqlstate", "") or ""))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=("a", 1, 2)), threading.Thread(target=writer, args=("b", 2, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and sorted(results) == ["a", "b"], (errors, results)
    assert lost == ["40P01"]  # one of them lost the deadlock, and was run again
    assert sorted(r.split(" after ")[1] for r in results.values()) == ["1 attempt(s)", "2 attempt(s)"]
    assert _counts(pg_engine) == {1: 2, 2: 2}  # each ran once in the end: nothing lost, nothing twice


def test_run_write_runs_the_work_again_after_a_serialization_failure(pg_engine: Engine) -> None:
    read_done, other_committed = threading.Event(), threading.Event()
    lost: list[str] = []
    attempts = 0

    def work(s: Session) -> int:
        nonlocal attempts
        attempts += 1
        s.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        n = int(s.execute(sa.text("SELECT n FROM race_probe WHERE id = 1")).scalar_one())
        if attempts == 1:
            read_done.set()
            assert other_committed.wait(30)
        _bump(s, 1)  # the row changed since this transaction's snapshot: 40001 the first time
        return n

    def other() -> None:
        assert read_done.wait(30)
        with pg_engine.begin() as conn:
            conn.execute(sa.text("UPDATE race_probe SET n = n + 1 WHERE id = 1"))
        other_committed.set()

    t = threading.Thread(target=other)
    t.start()
    seen = run_write(pg_engine, work, on_retry=lambda exc: lost.append(
        getattr(getattr(exc, "orig", None), "sqlstate", "") or ""))
    t.join(30)
    assert lost == ["40001"] and attempts == 2
    assert seen == 1 and _counts(pg_engine)[1] == 2  # the second run read the other's update


_PROBE = sa.text("SELECT n FROM race_probe WHERE id = :id")
_PREPARED = sa.text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%FROM race_probe WHERE%'")


def _prepared_after_reads(engine: Engine, read: object) -> int:
    for _ in range(8):  # psycopg prepares a statement from its fifth run
        with read() as conn:  # type: ignore[operator]
            conn.execute(_PROBE, {"id": 1}).scalar()
    with engine.connect() as conn:  # the same pooled connection: one at a time
        return int(conn.execute(_PREPARED).scalar() or 0)


def test_reads_keep_the_statements_postgresql_prepared_for_them(pg_engine: Engine) -> None:
    # A read ended by a ROLLBACK makes psycopg forget what it prepared on the connection:
    # the database then parses and plans every statement of a hot path anew.
    assert _prepared_after_reads(pg_engine, pg_engine.connect) == 0
    assert _prepared_after_reads(pg_engine, lambda: read_connection(pg_engine)) == 1


def test_a_read_session_keeps_prepared_statements_and_ends_cleanly_on_an_error(pg_engine: Engine) -> None:
    from contextlib import contextmanager

    @contextmanager
    def session_read() -> Iterator[sa.Connection]:
        with read_session(pg_engine) as s:
            yield s.connection()

    assert _prepared_after_reads(pg_engine, session_read) == 1
    with pytest.raises(RuntimeError):
        with read_session(pg_engine) as s:
            s.execute(_PROBE, {"id": 1})
            raise RuntimeError("a page failed")
    with pytest.raises(sa.exc.DBAPIError):  # read only: a write is refused, and nothing is kept
        with read_session(pg_engine) as s:
            s.execute(sa.text("UPDATE race_probe SET n = 9"))
    assert _counts(pg_engine) == {1: 0, 2: 0}


def test_a_memory_mapped_engine_reads_through_a_map_of_the_file_and_writes_durably_as_before(tmp_path: Path) -> None:
    from commtest.db import SQLITE_MMAP_BYTES, memory_mapped

    engine = memory_mapped(make_engine(f"sqlite:///{tmp_path}/mapped.db"))
    plain = make_engine(f"sqlite:///{tmp_path}/mapped.db")
    with engine.connect() as c:
        assert c.exec_driver_sql("PRAGMA mmap_size").scalar() == SQLITE_MMAP_BYTES
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"  # the engine's own set-up still ran
    with plain.connect() as c:
        assert c.exec_driver_sql("PRAGMA mmap_size").scalar() == 0  # only the engines that ask for it
    with write_connection(engine, durable=True) as c:
        c.exec_driver_sql("CREATE TABLE t (v INTEGER)")
        c.exec_driver_sql("INSERT INTO t VALUES (1), (2)")
    with plain.connect() as c:  # another connection reads what the mapped one wrote
        assert c.exec_driver_sql("SELECT sum(v) FROM t").scalar() == 3
    engine.dispose()
    plain.dispose()
