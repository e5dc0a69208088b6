"""Database layer: engine, sessions, migrations.

SQLite (the embedded default) gets WAL, ``busy_timeout``, ``synchronous=NORMAL`` and
``foreign_keys=ON``. Write transactions (``session_scope``) start with ``BEGIN IMMEDIATE``:
pysqlite's default deferred transactions silently lose read-modify-write updates across
processes (ARCHITECTURE.md, "Pitfalls"). Reads (``read_session``, and every plain
``engine.connect()``: pages, reports, the deadline scan) start a deferred ``BEGIN``: in WAL
mode they read a snapshot and never take the write lock, so a report that computes for a
minute never makes an acknowledgement wait. Transactions that mark a ping
``dispatching`` or record an acknowledgement are opened with ``durable=True``, which runs
them with ``synchronous=FULL`` so they survive a power cut, not only a crashed process.
"""
from __future__ import annotations

import logging
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

from commtest.errors import DatabaseError

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url if isinstance(engine_or_url, str) else str(engine_or_url.url)
    return url.startswith("sqlite")


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    u = sa.engine.make_url(url)
    if not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine with the pragmas and transaction mode commtest relies on."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if is_sqlite(url):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        # Enough pooled connections for the web app's thread pool and the dispatch workers:
        # a connection opened and closed per request costs more than the request (PRAGMAs, WAL).
        # A caller that chose its own pool class (NullPool, StaticPool) takes no pool sizes.
        if path is not None and "poolclass" not in kwargs:
            kwargs.setdefault("pool_size", 40)
            kwargs.setdefault("max_overflow", 40)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            **kwargs,
        )
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 20)
    return sa.create_engine(url, **kwargs)


# How much of a SQLite file a hot-path connection reads through a memory map: the pages it reads
# (random pings, endpoints, index pages of a file far larger than SQLite's 2 MB cache) are then
# read in place, not copied from the OS by a system call each. Only the pages read are mapped in;
# they are the OS's file cache, shared, not the process's own memory. Used by the acknowledgement
# writer process and the pages' token read only: a report that reads the whole file would count
# up to this much more in its resident size.
SQLITE_MMAP_BYTES = 256 * 1024 * 1024


def memory_mapped(engine: Engine) -> Engine:
    """``engine``'s SQLite connections read through a memory map (``SQLITE_MMAP_BYTES``); other
    databases are left as they are."""
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over BEGIN from pysqlite so we can say BEGIN IMMEDIATE ourselves.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()
        _record.info[_SYNCHRONOUS] = "NORMAL"

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE_OPTION) else "BEGIN")


# Execution option that marks a connection as a writer (BEGIN IMMEDIATE on SQLite).
WRITE_OPTION = "commtest_write"

# One writer at a time per SQLite file and process, queued on a Python lock in front of
# BEGIN IMMEDIATE. SQLite itself has only one writer too, but a writer that finds the lock
# taken sleeps in its busy handler (up to 100 ms per try), so under contention most of the
# time went to sleeping: acknowledgements at 16 clients waited 1.5 s at p99. A thread
# waiting here wakes the moment the previous writer commits. Other processes (the daemon
# beside a web worker) still meet at SQLite's lock and its busy timeout.
_WRITERS: dict[str, threading.RLock] = {}
_WRITERS_GUARD = threading.Lock()


# Each engine's lock, found once: parsing its URL per write cost the acknowledgement writer a
# thirtieth of a group.
_LOCK_OF: weakref.WeakKeyDictionary[Engine, threading.RLock | None] = weakref.WeakKeyDictionary()


def _writer_lock(engine: Engine) -> threading.RLock | None:
    try:
        return _LOCK_OF[engine]
    except KeyError:
        pass
    lock = None
    if engine.dialect.name == "sqlite":
        key = str(sqlite_path(str(engine.url)) or f"memory:{id(engine.pool)}")
        with _WRITERS_GUARD:
            lock = _WRITERS.setdefault(key, threading.RLock())
    _LOCK_OF[engine] = lock
    return lock


@contextmanager
def _one_writer(engine: Engine) -> Iterator[None]:
    lock = _writer_lock(engine)
    if lock is None:
        yield
        return
    if not lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
        raise sa.exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked (in-process writer queue)"))
    try:
        yield
    finally:
        lock.release()


@contextmanager
def write_connection(engine: Engine, *, durable: bool = False) -> Iterator[sa.Connection]:
    """A write transaction on a connection (no ORM session): it commits on success and rolls
    back on error. ``session_scope`` is this with a ``Session``; the acknowledgement writer,
    whose statements are all Core, takes it bare (a session's set-up and close cost it a
    twelfth of a group).

    On SQLite it takes the write lock at BEGIN (IMMEDIATE): keep it short.
    ``durable=True`` makes the commit survive a power cut on SQLite (synchronous=FULL);
    PostgreSQL commits are durable already with its default ``synchronous_commit=on``.
    """
    with _one_writer(engine), engine.connect() as plain:
        conn = plain.execution_options(**{WRITE_OPTION: True})
        if conn.dialect.name == "sqlite":
            # Set before the transaction (SQLite takes it only outside one), and only when it
            # changes: a process that writes only durably (the acknowledgement writer) sets it once.
            _synchronous(conn, "FULL" if durable else "NORMAL")
        try:
            with conn.begin():
                yield conn
        finally:
            if conn.in_transaction():
                conn.rollback()


@contextmanager
def session_scope(engine: Engine, *, durable: bool = False) -> Iterator[Session]:
    """A write session whose transaction commits on success and rolls back on error (as
    ``write_connection``, which says what ``durable`` does)."""
    with write_connection(engine, durable=durable) as conn:
        with Session(bind=conn, expire_on_commit=False) as session:
            yield session
            session.flush()


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only session: a deferred snapshot on SQLite (never the write lock), a
    ``READ ONLY`` transaction on PostgreSQL. It writes nothing; it ends as ``read_connection``
    says why."""
    with engine.connect() as conn:
        with Session(bind=conn, expire_on_commit=False, autoflush=False) as session:
            with conn.begin() as txn:
                if conn.dialect.name == "postgresql":
                    conn.exec_driver_sql("SET TRANSACTION READ ONLY")
                try:
                    yield session
                except BaseException:
                    txn.rollback()
                    raise
                txn.commit()


@contextmanager
def read_connection(engine: Engine) -> Iterator[sa.Connection]:
    """``engine.connect()`` for reads: its transaction, which wrote nothing, ends with a COMMIT
    rather than a ROLLBACK (the same end for a read).

    Why: psycopg forgets every statement it prepared on a connection at a ROLLBACK (and
    deallocates them on the server). A pooled connection serves every path in turn, so one read
    ended by a ROLLBACK made PostgreSQL parse and plan the dispatcher's statements anew on that
    connection: ended by a COMMIT, dispatch ran about a sixth faster, with a sixth less of the
    database's CPU (docs/PERFORMANCE.md)."""
    with engine.connect() as conn:
        yield conn
        if conn.in_transaction():
            conn.commit()


T = TypeVar("T")
# SQLSTATEs of a transaction that lost a race and may simply be run again.
_RETRYABLE_PG = {"40001", "40P01"}  # serialization_failure, deadlock_detected
WRITE_ATTEMPTS = 6


def is_retryable(exc: BaseException) -> bool:
    """A lost race (PostgreSQL serialization failure or deadlock, SQLite busy) rather than a bug."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _RETRYABLE_PG:
        return True
    return isinstance(exc, sa.exc.OperationalError) and "database is locked" in str(exc)


def run_write(engine: Engine, work: Callable[[Session], T], *, durable: bool = False,
              attempts: int = WRITE_ATTEMPTS, on_retry: Callable[[BaseException], None] | None = None) -> T:
    """Run ``work`` in a write transaction; run it again from the start when the
    transaction lost a race (deadlock, serialization failure, busy), so a caller never
    sees one. ``work`` must only touch the database (it may run more than once)."""
    return _retried(lambda: session_scope(engine, durable=durable), work, attempts, on_retry)


def run_write_connection(engine: Engine, work: Callable[[sa.Connection], T], *, durable: bool = False,
                         attempts: int = WRITE_ATTEMPTS) -> T:
    """``run_write`` for Core statements: ``work`` gets the transaction's connection."""
    return _retried(lambda: write_connection(engine, durable=durable), work, attempts, None)


def _retried(scope: Callable[[], Any], work: Callable[[Any], T], attempts: int,
             on_retry: Callable[[BaseException], None] | None) -> T:
    for attempt in range(1, attempts + 1):
        try:
            with scope() as s:
                return work(s)
        except sa.exc.DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            if on_retry is not None:
                on_retry(exc)
            log.info("write transaction lost a race (%s); running it again (%d/%d)",
                     type(getattr(exc, "orig", exc)).__name__, attempt, attempts)
            time.sleep(min(0.2, 0.005 * 2 ** attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")


# The ``synchronous`` a pooled SQLite connection has now (in its pool record's info).
_SYNCHRONOUS = "commtest_synchronous"


def _synchronous(conn: sa.Connection, value: str) -> None:
    info = conn.connection.info
    if info.get(_SYNCHRONOUS) != value:
        _raw_pragma(conn, f"synchronous={value}")
        info[_SYNCHRONOUS] = value


def _raw_pragma(conn: sa.Connection, pragma: str) -> None:
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute(f"PRAGMA {pragma}")


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (Alembic)."""
    from alembic import command

    cfg = alembic_config(str(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as plain:
        conn = plain.execution_options(**{WRITE_OPTION: True})
        cfg.attributes["connection"] = conn
        try:
            command.upgrade(cfg, revision)
        except sa.exc.OperationalError as exc:
            raise DatabaseError(f"cannot migrate the database: {exc.orig}") from exc
        if conn.in_transaction():
            conn.commit()


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def ensure_schema(engine: Engine) -> None:
    """Run pending migrations: every command that needs the schema calls this."""
    try:
        if current_revision(engine) != head_revision():
            upgrade(engine)
    except sa.exc.OperationalError as exc:
        raise DatabaseError(f"cannot open the database {engine.url.render_as_string()}: {exc.orig}") from exc
