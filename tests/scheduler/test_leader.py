from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from commtest.clock import FrozenClock
from commtest.errors import ConfigError, DatabaseError
from scheduler import leader
from scheduler.leader import LEADER_KEY, PostgresAdvisoryLock, SqliteFileLock, leader_lock_for

PG_ENV = "COMMTEST_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parents[2]

HOLDER = """
import sys, time
from pathlib import Path
from scheduler.leader import SqliteFileLock
lock = SqliteFileLock(Path(sys.argv[1]))
print("held" if lock.acquire(wait=False) else "refused", flush=True)
time.sleep(60)
"""


def frozen() -> FrozenClock:
    return FrozenClock(datetime(2026, 4, 14, 8, tzinfo=timezone.utc))


def test_the_public_names_are_exported() -> None:
    assert set(leader.__all__) == {
        "LEADER_KEY", "LeaderLock", "PostgresAdvisoryLock", "SqliteFileLock", "leader_lock_for",
    }


# -- SQLite -----------------------------------------------------------------------------------


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A second process holding the leader lock of ``tmp_path/commtest.db``."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "commtest.db")],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_a_second_process_cannot_lead_until_the_first_is_killed_with_sigkill(
    tmp_path: Path, holder: subprocess.Popen[str]
) -> None:
    lock = SqliteFileLock(tmp_path / "commtest.db")
    assert lock.acquire(wait=False) is False
    assert lock.check() is False
    assert f"pid {holder.pid}" in lock.describe_holder()

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=10)

    assert lock.acquire(wait=False) is True
    assert lock.check() is True
    assert lock.describe_holder() == f"this process ({leader._identity()})"
    lock.release()


def test_the_lock_file_sits_next_to_the_database_and_names_the_leader(tmp_path: Path) -> None:
    lock = SqliteFileLock(tmp_path / "commtest.db", clock=frozen())
    assert lock.acquire(wait=False)
    host, pid, since = (tmp_path / "commtest.db.leader.lock").read_text().split()
    assert pid == str(os.getpid()) and since == "2026-04-14T08:00:00+00:00"
    lock.release()


def test_a_standby_waiting_with_a_timeout_gives_up_and_names_the_leader(tmp_path: Path) -> None:
    first = SqliteFileLock(tmp_path / "commtest.db", clock=frozen())
    clock = frozen()
    standby = SqliteFileLock(tmp_path / "commtest.db", clock=clock)
    assert first.acquire(wait=False)
    assert standby.acquire(wait=True, timeout=5) is False
    assert clock.now() == datetime(2026, 4, 14, 8, 0, 5, tzinfo=timezone.utc)  # polled, then gave up
    assert standby.describe_holder() == f"host {leader.socket.gethostname()} pid {os.getpid()} since 2026-04-14T08:00:00+00:00"
    first.release()
    assert standby.acquire(wait=True, timeout=5) is True
    standby.release()


def test_nobody_holds_a_lock_that_was_never_taken(tmp_path: Path) -> None:
    assert SqliteFileLock(tmp_path / "commtest.db").describe_holder() == "nobody"


def test_leadership_is_lost_when_the_lock_file_is_deleted_under_the_leader(tmp_path: Path) -> None:
    lock = SqliteFileLock(tmp_path / "commtest.db")
    assert lock.acquire(wait=False)
    (tmp_path / "commtest.db.leader.lock").unlink()
    assert lock.check() is False  # else a second daemon could lock a new file at that path
    lock.release()


# -- choosing the lock ------------------------------------------------------------------------


def test_a_sqlite_url_gets_a_file_lock_next_to_its_database(tmp_path: Path) -> None:
    lock = leader_lock_for(f"sqlite:///{tmp_path}/commtest.db")
    assert isinstance(lock, SqliteFileLock)
    assert lock.path == tmp_path / "commtest.db.leader.lock"


def test_a_postgresql_url_gets_an_advisory_lock_with_a_libpq_url() -> None:
    lock = leader_lock_for("postgresql+psycopg://commtest@db.example:5432/commtest")
    assert isinstance(lock, PostgresAdvisoryLock)
    assert lock.url == "postgresql://commtest@db.example:5432/commtest"
    assert lock.key == LEADER_KEY


def test_an_in_memory_sqlite_database_cannot_elect_a_leader() -> None:
    with pytest.raises(ConfigError) as err:
        leader_lock_for("sqlite://")
    assert str(err.value) == (
        "an in-memory SQLite database cannot be shared by a daemon: "
        "set COMMTEST_DATABASE_URL to a file, e.g. sqlite:///var/commtest.db"
    )


def test_an_unknown_database_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="no leader lock for database URL scheme 'mysql': use sqlite or postgresql"):
        leader_lock_for("mysql://db.example/commtest")


def test_an_unreachable_postgresql_server_is_reported_when_not_waiting() -> None:
    lock = PostgresAdvisoryLock("postgresql://commtest@127.0.0.1:1/commtest", connect_timeout=2)
    with pytest.raises(DatabaseError, match="^cannot connect to PostgreSQL for the leader lock: "):
        lock.acquire(wait=False)
    assert lock.check() is False


# -- PostgreSQL -------------------------------------------------------------------------------


@pytest.fixture
def pg_url() -> str:
    if not os.environ.get(PG_ENV):
        pytest.skip(f"PostgreSQL not configured: set {PG_ENV}=postgresql://USER@HOST:PORT/DB to run these")
    return os.environ[PG_ENV]


@pytest.fixture
def key() -> int:
    # A key of its own, so parallel test runs and a real daemon never meet this one.
    return random.Random().getrandbits(63)


def test_only_one_of_two_postgresql_connections_acquires_the_lock(pg_url: str, key: int) -> None:
    first, second = PostgresAdvisoryLock(pg_url, key), PostgresAdvisoryLock(pg_url, key)
    try:
        assert first.acquire(wait=False) is True
        assert first.acquire(wait=False) is True  # idempotent, not stacked
        assert second.acquire(wait=False) is False
        assert first.check() is True and second.check() is False
        holder = second.describe_holder()
        assert f"pid {os.getpid()}" in holder
        assert f"PostgreSQL backend {first.backend_pid()}" in holder
        first.release()
        assert second.acquire(wait=False) is True
    finally:
        first.release()
        second.release()


def test_a_terminated_postgresql_session_loses_leadership_at_once(pg_url: str, key: int) -> None:
    import psycopg

    first, second = PostgresAdvisoryLock(pg_url, key), PostgresAdvisoryLock(pg_url, key)
    try:
        assert first.acquire(wait=False)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            # The timeout makes the server wait until the backend is gone, lock included.
            admin.execute("SELECT pg_terminate_backend(%s, 2000)", (first.backend_pid(),))
        assert first.check() is False
        assert first.check() is False  # and it does not reconnect behind our back
        assert second.acquire(wait=False) is True
    finally:
        first.release()
        second.release()


def test_a_postgresql_standby_polls_until_its_timeout(pg_url: str, key: int) -> None:
    clock = frozen()
    first, standby = PostgresAdvisoryLock(pg_url, key), PostgresAdvisoryLock(pg_url, key, clock=clock)
    try:
        assert first.acquire(wait=False)
        assert standby.acquire(wait=True, timeout=3) is False
        assert clock.now() == datetime(2026, 4, 14, 8, 0, 3, tzinfo=timezone.utc)
    finally:
        first.release()
        standby.release()


def test_nobody_holds_an_untaken_postgresql_lock(pg_url: str, key: int) -> None:
    assert PostgresAdvisoryLock(pg_url, key).describe_holder() == "nobody"
