"""One scheduler leader at a time.

SQLite lives on one host, so an OS file lock next to the database file is enough, and
the kernel releases it when the process dies, even by ``kill -9``. PostgreSQL may be
shared by daemons on several hosts: a session advisory lock, held on a dedicated
connection, is released by the server as soon as that session ends. Losing that
connection therefore means losing leadership at once; ``check()`` says so, and the
caller must stop dispatching and acquire again (we never reconnect silently, because
another daemon may have become leader in between).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import re
import socket
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from commtest.clock import Clock, SystemClock
from commtest.db import is_sqlite, sqlite_path
from commtest.errors import ConfigError, DatabaseError

__all__ = [
    "LEADER_KEY",
    "LeaderLock",
    "PostgresAdvisoryLock",
    "SqliteFileLock",
    "leader_lock_for",
]

# A stable 64-bit advisory lock key, so every commtest daemon asks for the same lock
# and other applications sharing the database are unlikely to collide with it.
LEADER_KEY = int.from_bytes(hashlib.sha256(b"commtest-leader").digest()[:8], "big", signed=True)
SQLITE_POLL_SECONDS = 0.2
POSTGRES_POLL_SECONDS = 1.0


class LeaderLock(Protocol):
    def acquire(self, *, wait: bool, timeout: float | None = None) -> bool:
        """Become leader. ``wait=False`` tries once; ``wait=True`` polls until acquired
        or ``timeout`` seconds passed (None: forever). True when this process leads."""
        ...

    def check(self) -> bool:
        """True while this process is still the leader. Cheap enough to call per tick."""
        ...

    def release(self) -> None: ...

    def describe_holder(self) -> str:
        """Who holds the lock (host and pid), for the message a standby prints."""
        ...


def leader_lock_for(database_url: str, *, clock: Clock | None = None) -> LeaderLock:
    """The leader lock that fits the database behind ``database_url``."""
    if is_sqlite(database_url):
        path = sqlite_path(database_url)
        if path is None:
            raise ConfigError(
                "an in-memory SQLite database cannot be shared by a daemon: "
                "set COMMTEST_DATABASE_URL to a file, e.g. sqlite:///var/commtest.db"
            )
        return SqliteFileLock(path, clock=clock)
    if re.match(r"^postgres(ql)?(\+\w+)?://", database_url):
        return PostgresAdvisoryLock(database_url, clock=clock)
    raise ConfigError(f"no leader lock for database URL scheme {database_url.split(':', 1)[0]!r}: use sqlite or postgresql")


def _identity() -> str:
    return f"{socket.gethostname()} {os.getpid()}"


def _deadline_passed(clock: Clock, started: datetime, timeout: float | None) -> bool:
    return timeout is not None and (clock.now() - started).total_seconds() >= timeout


class SqliteFileLock:
    """``flock`` on ``<database file>.leader.lock``; the file names the holder."""

    def __init__(self, db_path: Path, *, clock: Clock | None = None) -> None:
        self.path = Path(db_path).with_name(Path(db_path).name + ".leader.lock")
        self.clock = clock or SystemClock()
        self._fd: int | None = None

    def acquire(self, *, wait: bool, timeout: float | None = None) -> bool:
        if self._fd is not None:
            return True
        started = self.clock.now()
        while True:
            if self._try_once():
                return True
            if not wait or _deadline_passed(self.clock, started, timeout):
                return False
            self.clock.sleep(SQLITE_POLL_SECONDS)

    def _try_once(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # No O_TRUNC: opening must not wipe the holder's name before we own the lock.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as exc:
            os.close(fd)
            raise DatabaseError(f"{self.path}: cannot lock the leader file: {exc.strerror}") from exc
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{_identity()} {self.clock.now().isoformat()}\n".encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return True

    def check(self) -> bool:
        if self._fd is None:
            return False
        # The kernel keeps our lock, but if someone deleted or replaced the file, a
        # second daemon would lock a new file at the same path: then we are not alone.
        try:
            return os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except OSError:
            return False

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # The file stays: unlinking it would let two daemons lock two different files.
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def describe_holder(self) -> str:
        if self._fd is not None:
            return f"this process ({_identity()})"
        try:
            text = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return "nobody"
        if not text:
            return f"another process (it has not written its name in {self.path} yet)"
        host, pid, *since = text.split()
        return f"host {host} pid {pid}" + (f" since {since[0]}" if since else "")


class PostgresAdvisoryLock:
    """``pg_try_advisory_lock`` on a dedicated autocommit psycopg connection."""

    def __init__(
        self,
        url: str,
        key: int = LEADER_KEY,
        *,
        clock: Clock | None = None,
        connect_timeout: int = 5,
        check_timeout_ms: int = 2000,
    ) -> None:
        # psycopg wants a libpq URL, not SQLAlchemy's "postgresql+psycopg://".
        self.url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
        self.key = key
        self.clock = clock or SystemClock()
        self.connect_timeout = connect_timeout
        self.check_timeout_ms = check_timeout_ms
        self._conn: Any = None
        self._held = False

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> Any:
        import psycopg

        try:
            return psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                application_name=f"commtest-daemon {_identity()}",
                # A dead peer or network must end the session quickly: the server then
                # drops our lock, and our next check() fails instead of hanging.
                keepalives=1,
                keepalives_idle=10,
                keepalives_interval=5,
                keepalives_count=3,
                tcp_user_timeout=10_000,
                options=f"-c statement_timeout={self.check_timeout_ms}",
            )
        except psycopg.Error as exc:
            raise DatabaseError(f"cannot connect to PostgreSQL for the leader lock: {exc}") from exc

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection may fail; it is gone either way
                pass

    # -- LeaderLock ---------------------------------------------------------------------
    def acquire(self, *, wait: bool, timeout: float | None = None) -> bool:
        if self._held:
            return True  # session locks stack: never take it twice on one connection
        import psycopg

        started = self.clock.now()
        while True:
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
                if row and row[0]:
                    self._held = True
                    return True
            except (psycopg.Error, DatabaseError) as exc:
                self._drop()
                if not wait:
                    if isinstance(exc, DatabaseError):
                        raise
                    raise DatabaseError(f"PostgreSQL failed while taking the leader lock: {exc}") from exc
            if not wait or _deadline_passed(self.clock, started, timeout):
                return False
            self.clock.sleep(POSTGRES_POLL_SECONDS)

    def check(self) -> bool:
        if not self._held or self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1").fetchone()
            return True
        except Exception:  # noqa: BLE001 - any failure means the session, and the lock, may be gone
            self._drop()
            return False

    def release(self) -> None:
        if self._conn is not None and self._held:
            try:
                self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            except Exception:  # noqa: BLE001 - closing the session below releases it anyway
                pass
        self._drop()

    def backend_pid(self) -> int | None:
        """The server process of our dedicated connection (for tests and diagnostics)."""
        return int(self._conn.info.backend_pid) if self._conn is not None else None

    def describe_holder(self) -> str:
        if self._held:
            return f"this process ({_identity()})"
        unsigned = self.key & 0xFFFF_FFFF_FFFF_FFFF
        # A bigint advisory key shows in pg_locks as classid (high half), objid (low
        # half) and objsubid 1.
        query = """
            SELECT a.application_name, a.pid, a.client_addr, a.backend_start
            FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
            WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
              AND l.classid::bigint = %s AND l.objid::bigint = %s
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """
        conn = self._conn
        own = conn is None or conn.closed
        try:
            if own:
                conn = self._connect()
            row = conn.execute(query, (unsigned >> 32, unsigned & 0xFFFF_FFFF)).fetchone()
        except Exception as exc:  # noqa: BLE001 - a description must not crash the standby
            return f"unknown (cannot ask PostgreSQL: {exc})"
        finally:
            if own and conn is not None:
                conn.close()
        if row is None:
            return "nobody"
        app, pid, addr, since = row
        name = app.removeprefix("commtest-daemon ") if app and app.startswith("commtest-daemon ") else None
        who = f"host {name.split()[0]} pid {name.split()[1]}" if name and len(name.split()) == 2 else (
            f"application {app!r}" if app else "an unnamed session"
        )
        where = f" from {addr}" if addr else ""
        return f"{who} (PostgreSQL backend {pid}{where}, connected since {since.isoformat()})"
