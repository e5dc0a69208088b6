"""One-row reads on SQLite without the pool's bookkeeping: the acknowledgement pages' lookup.

A page reads one row by an indexed key. Through an engine that read cost about 100 µs (pool
checkout, ``BEGIN``, ``ROLLBACK``, result objects) against about 12 µs for the query itself,
and handed to a thread it then waited for the GIL as well. Here the statement is compiled by
SQLAlchemy once and run on a connection of the calling thread's own, in autocommit mode (one
statement is one read transaction: a consistent snapshot), and each column goes through its
type's own result processor, so the values are exactly what a Core read returns.

In WAL mode a reader never waits for a writer, so this read never waits for a lock: the
connection's busy timeout is 0 and ``query_only`` is on. The rare ``SQLITE_BUSY`` a reader can
still meet (a WAL being recovered after a crash) comes out as ``sqlite3.OperationalError``, for
the caller to fall back on the usual engine read, which waits with the normal busy timeout.

On an event loop, the reads of one turn of the loop share one read transaction: the pages
whose requests arrived together read one snapshot, which ends (COMMIT) as soon as the loop has
run them. Each read transaction costs SQLite a lock and an unlock of the WAL index and two
system calls more; a burst of pages paid them per page (a tenth of a page). A page never reads
a snapshot older than the turn of the loop it runs in (nor one older than half a second), and a
request that arrives after an answer was recorded reads it. Off an event loop each read is its own transaction, as before.
"""
from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.db import SQLITE_MMAP_BYTES, sqlite_path

# A shared snapshot is never read for longer than this, whatever happens to its loop.
MAX_SNAPSHOT_SECONDS = 0.5
_monotonic = time.monotonic  # (a test moves it)

# Stored values processed per column remembered: the same organisation's names and languages
# (JSON text) and the same run's instants come back on page after page, and decoding them was a
# fifth of a page.
MEMO_PER_COLUMN = 2048


def _remembered(process: Callable[[Any], Any] | None, then: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """``process`` (a column type's result processor), then ``then``, remembering the last results
    by stored value. What it returns is shared between reads: ``then`` makes it immutable (a
    tuple, a read-only mapping) where the value is a decoded JSON list or dict."""
    steps = [step for step in (process, then) if step is not None]
    if not steps:
        return None
    if len(steps) == 1:
        return functools.lru_cache(maxsize=MEMO_PER_COLUMN)(steps[0])
    first, second = steps
    return functools.lru_cache(maxsize=MEMO_PER_COLUMN)(lambda value: second(first(value)))


class PointRead:
    """``stmt`` (a SELECT with named bind parameters) on the SQLite file behind ``engine``.

    A row is a named tuple of the statement's column keys, or what ``make`` makes of the list of
    its values (a ``NamedTuple``'s ``_make`` whose fields are the columns, in order). ``then``
    names columns whose values are converted further after their type's processor (once per
    stored value: remembered with it)."""

    def __init__(self, engine: Engine, stmt: sa.Select[Any], make: Callable[[list[Any]], Any] | None = None,
                 then: Mapping[str, Callable[[Any], Any]] | None = None) -> None:
        if engine.dialect.name != "sqlite":
            raise ValueError("PointRead reads SQLite files only")
        path = sqlite_path(str(engine.url))
        if path is None:
            raise ValueError("PointRead needs a SQLite file (an in-memory database has no second connection)")
        dialect = engine.dialect
        compiled = stmt.compile(dialect=dialect)
        if compiled._bind_processors:  # noqa: SLF001 - a parameter that needs converting is not passed as is
            raise ValueError("PointRead passes parameters as they are: use plain string or integer keys")
        self._path = str(path)
        self._sql = str(compiled)
        self._order = tuple(compiled.positiontup or ())
        columns = list(stmt.selected_columns)
        self.keys = tuple(stmt.selected_columns.keys())
        then = dict(then or {})
        if set(then) - set(self.keys):
            raise ValueError(f"PointRead: no column {sorted(set(then) - set(self.keys))} to convert")
        self._make: Callable[[list[Any]], Any] = make or namedtuple("Row", self.keys)._make  # type: ignore[attr-defined]
        processors = (_remembered(c.type.dialect_impl(dialect).result_processor(dialect, None), then.get(key))
                      for c, key in zip(columns, self.keys, strict=True))
        # Only the columns that need it are converted (most are integers and text, as stored).
        self._processors = tuple((i, p) for i, p in enumerate(processors) if p is not None)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: no implicit BEGIN, each SELECT is its own read transaction.
            conn = sqlite3.connect(self._path, timeout=0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA query_only=ON")
            # A page's few B-tree pages read in place (commtest.db.SQLITE_MMAP_BYTES): a sixth of the
            # query on a database larger than SQLite's cache.
            conn.execute(f"PRAGMA mmap_size={SQLITE_MMAP_BYTES}")
            self._local.conn = conn
        return conn

    def first(self, **params: Any) -> Any:
        """The first row (see the class), or None. Raises
        ``sqlite3.Error`` when the file cannot be read right now (the caller falls back on its
        engine)."""
        try:
            conn = self._connection()
            if getattr(self._local, "reading", False) and _monotonic() - self._local.began > MAX_SNAPSHOT_SECONDS:
                self._end()  # a turn of the loop this long, or a loop that stopped before ending it
            if not getattr(self._local, "reading", False):
                self._begin(conn)
            row = conn.execute(self._sql, [params[k] for k in self._order]).fetchone()
        except sqlite3.Error:
            self.close()  # a fresh connection next time (the file may have been replaced or repaired)
            raise
        if row is None:
            return None
        values = list(row)
        for i, process in self._processors:
            values[i] = process(values[i])
        return self._make(values)

    def _begin(self, conn: sqlite3.Connection) -> None:
        """On an event loop: a read transaction for the rest of this turn of the loop."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a plain thread: each read is its own transaction
            return
        if not conn.in_transaction:
            conn.execute("BEGIN")  # deferred: the snapshot is taken by the first read
        self._local.reading, self._local.began = True, _monotonic()
        loop.call_soon(self._end)  # after the callbacks ready now: this turn's other pages

    def _end(self) -> None:
        if not getattr(self._local, "reading", False):
            return
        self._local.reading = False
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                self.close()

    def close(self) -> None:
        """Close this thread's connection (the next read opens another)."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        self._local.reading = False
        if conn is not None:
            conn.close()
