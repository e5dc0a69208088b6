"""Sign-in throttling per user name, whatever address the attempts come from.

After ``settings.login_lockout_failures`` failures in a row the name is locked for
``login_lockout_seconds``; each further failure doubles the lock, up to an hour. Names that
do not exist are throttled the same way, so the answer never tells which names exist. A
successful sign-in (or ``commtest user passwd``) clears the count. This comes on top of the
console's per-address limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.db import read_session, run_write
from commtest.models import LoginThrottle

MAX_LOCK = timedelta(hours=1)


@dataclass(frozen=True)
class Lockout:
    until: datetime
    failures: int


def _key(username: str) -> str:
    return username.strip().lower()[:100]


def lockout_of(engine: Engine, username: str, now: datetime) -> Lockout | None:
    """The lock on ``username`` if it is locked now."""
    with read_session(engine) as s:
        row = s.get(LoginThrottle, _key(username))
        if row is None or row.locked_until is None or row.locked_until <= now:
            return None
        return Lockout(row.locked_until, row.failures)


def lock_length(failures: int, threshold: int, first_seconds: float) -> timedelta | None:
    if failures < threshold:
        return None
    return min(MAX_LOCK, timedelta(seconds=first_seconds * 2 ** min(failures - threshold, 20)))


def record_failure(engine: Engine, username: str, now: datetime, *, threshold: int,
                   first_seconds: float) -> Lockout | None:
    """Count one failed sign-in; the lock it causes, if any."""
    key = _key(username)

    def work(s: sa.orm.Session) -> Lockout | None:
        row = s.get(LoginThrottle, key, with_for_update=True)
        if row is None:
            row = LoginThrottle(username=key, failures=0)
        row.failures += 1
        row.last_failed_at = now
        length = lock_length(row.failures, threshold, first_seconds)
        row.locked_until = now + length if length else None
        s.add(row)
        return Lockout(row.locked_until, row.failures) if row.locked_until else None

    return run_write(engine, work)  # type: ignore[arg-type]


def clear_failures(engine: Engine, username: str) -> None:
    key = _key(username)
    with read_session(engine) as s:
        if s.get(LoginThrottle, key) is None:
            return  # the usual case: no write at all
    run_write(engine, lambda s: s.execute(sa.delete(LoginThrottle).where(LoginThrottle.username == key)))  # type: ignore[arg-type]
