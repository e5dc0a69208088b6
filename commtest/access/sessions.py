"""Console sessions kept on the server.

The cookie holds 32 random bytes (URL-safe); the database keeps their sha256, the user and
the expiry. Signing out deletes the row, so a copied cookie stops working at once; so do a
password change and disabling the user (``commtest.users``).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.db import read_session, session_scope
from commtest.models import ConsoleSession, User
from commtest.users import UserInfo, _info

_SHAPE = 43  # secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionRow:
    id: int
    user: UserInfo
    expires_at: datetime


def open_session(engine: Engine, user_id: int, now: datetime, lifetime: timedelta, *, source: str = "",
                 user_agent: str = "") -> str:
    """A new session for ``user_id``; returns the cookie value (shown to nobody else)."""
    token = secrets.token_urlsafe(32)
    with session_scope(engine) as s:
        # Expired rows of anybody go now: the table holds only live sessions.
        s.execute(sa.delete(ConsoleSession).where(ConsoleSession.expires_at < now))  # type: ignore[arg-type]
        s.add(ConsoleSession(token_hash=digest(token), user_id=user_id, created_at=now, expires_at=now + lifetime,
                             last_seen_at=now, source=source[:64], user_agent=user_agent[:300]))
    return token


def read_session_token(engine: Engine, token: str | None, now: datetime) -> SessionRow | None:
    """The live session of this cookie and its (active) user, or None. Read-only."""
    if not token or len(token) != _SHAPE:
        return None
    with read_session(engine) as s:
        row = s.exec(select(ConsoleSession, User).join(User, User.id == ConsoleSession.user_id)  # type: ignore[arg-type]
                     .where(ConsoleSession.token_hash == digest(token))).first()
    if row is None:
        return None
    session, user = row
    if session.expires_at is None or session.expires_at <= now or not user.active:
        return None
    return SessionRow(session.id or 0, _info(user), session.expires_at)


def close_session(engine: Engine, token: str | None) -> bool:
    """Delete the session of this cookie; True when there was one."""
    if not token:
        return False
    with session_scope(engine) as s:
        result = s.execute(sa.delete(ConsoleSession).where(ConsoleSession.token_hash == digest(token)))  # type: ignore[arg-type]
        return bool(result.rowcount)  # type: ignore[attr-defined]
