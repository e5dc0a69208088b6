"""Secret calendar URLs, one or more per organisation: ``/calendar/<token>.ics`` lists that
organisation's announced tests (``web.calendar``). The token is shown once; only its sha256
is stored; revoking one stops it at once."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from commtest import events as ev
from commtest.db import read_session, session_scope
from commtest.errors import NotFoundError
from commtest.models import CalendarFeed, Organisation

_SHAPE = 43


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class FeedInfo:
    id: int
    organisation_code: str
    created_at: datetime | None
    created_by: str
    revoked_at: datetime | None


def _feed(row: CalendarFeed) -> FeedInfo:
    return FeedInfo(row.id or 0, row.organisation_code, row.created_at, row.created_by, row.revoked_at)


def create_feed(engine: Engine, organisation_code: str, now: datetime, *, by: str, actor: str) -> tuple[FeedInfo, str]:
    token = secrets.token_urlsafe(32)
    with session_scope(engine) as s:
        if s.exec(select(Organisation.id).where(Organisation.code == organisation_code)).first() is None:
            raise NotFoundError(f"no organisation {organisation_code!r} in the directory")
        row = CalendarFeed(organisation_code=organisation_code, token_hash=digest(token), created_at=now, created_by=by)
        s.add(row)
        s.flush()
        ev.record_event(s, at=now, actor=actor, kind=ev.FEED_CREATED, organisation_code=organisation_code,
                        feed_id=row.id, by=by)
        return _feed(row), token


def revoke_feed(engine: Engine, feed_id: int, now: datetime, *, by: str, actor: str) -> FeedInfo:
    with session_scope(engine) as s:
        row = s.get(CalendarFeed, feed_id)
        if row is None:
            raise NotFoundError(f"no calendar link {feed_id}")
        if row.revoked_at is None:
            row.revoked_at = now
            s.add(row)
            ev.record_event(s, at=now, actor=actor, kind=ev.FEED_REVOKED, organisation_code=row.organisation_code,
                            feed_id=row.id, by=by)
        return _feed(row)


def list_feeds(engine: Engine) -> list[FeedInfo]:
    with read_session(engine) as s:
        return [_feed(r) for r in s.exec(select(CalendarFeed).order_by(col(CalendarFeed.organisation_code),
                                                                       col(CalendarFeed.id))).all()]


def organisation_of_feed(engine: Engine, token: str) -> str | None:
    """The organisation whose live feed this token opens, or None. Read-only."""
    if not token or len(token) != _SHAPE:
        return None
    with read_session(engine) as s:
        row = s.exec(select(CalendarFeed).where(CalendarFeed.token_hash == digest(token))).first()
    return row.organisation_code if row is not None and row.revoked_at is None else None
