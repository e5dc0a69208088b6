"""Personal API tokens: ``ct_`` and 43 random URL-safe characters, shown once when created;
the database keeps their sha256. A token acts with its user's current role, so demoting or
disabling the user takes effect at the next request; a revoked token is refused."""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import col, select

from commtest import events as ev
from commtest.db import read_session, session_scope
from commtest.errors import NotFoundError, PermissionDenied
from commtest.models import ApiToken, Role, User
from commtest.users import BadUserInput, UserInfo, _info

TOKEN_PREFIX = "ct_"
_LENGTH = len(TOKEN_PREFIX) + 43


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    id: int
    username: str
    name: str
    prefix: str
    created_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _token_info(token: ApiToken, username: str) -> TokenInfo:
    return TokenInfo(token.id or 0, username, token.name, token.prefix, token.created_at, token.revoked_at)


def create_token(engine: Engine, username: str, name: str, now: datetime, *, actor: str) -> tuple[TokenInfo, str]:
    """A new token for ``username``; returns it with the secret, which is never shown again."""
    name = name.strip()
    if not name or len(name) > 100:
        raise BadUserInput("token name: say in 1-100 characters what the token is for, e.g. 'crisis platform'")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with session_scope(engine) as s:
        user = s.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise NotFoundError(f"user {username!r} does not exist; `commtest user list` shows the users")
        if not user.active:
            raise PermissionDenied(f"user {username!r} is disabled; enable it first (`commtest user enable`)")
        token = ApiToken(user_id=user.id or 0, name=name, token_hash=digest(raw), prefix=raw[:10], created_at=now)
        s.add(token)
        s.flush()
        ev.record_event(s, at=now, actor=actor, kind=ev.TOKEN_CREATED, token_id=token.id, user=username, name=name)
        return _token_info(token, username), raw


def list_tokens(engine: Engine, username: str | None = None) -> list[TokenInfo]:
    with read_session(engine) as s:
        query = select(ApiToken, User.username).join(User, col(User.id) == col(ApiToken.user_id))
        if username is not None:
            query = query.where(User.username == username)
        return [_token_info(t, u) for t, u in s.exec(query.order_by(col(ApiToken.id))).all()]


def revoke_token(engine: Engine, token_id: int, now: datetime, *, actor: str, owner: str | None = None) -> TokenInfo:
    """Revoke token ``token_id`` (only one of ``owner``'s, when given). Revoking twice is harmless."""
    with session_scope(engine) as s:
        row = s.exec(select(ApiToken, User.username).join(User, col(User.id) == col(ApiToken.user_id))
                     .where(ApiToken.id == token_id)).first()
        if row is None or (owner is not None and row[1] != owner):
            raise NotFoundError(f"no API token {token_id}; `commtest token list` shows the tokens")
        token, username = row
        if token.revoked_at is None:
            token.revoked_at = now
            s.add(token)
            ev.record_event(s, at=now, actor=actor, kind=ev.TOKEN_REVOKED, token_id=token.id, user=username,
                            name=token.name)
        return _token_info(token, username)


def authenticate_token(engine: Engine, raw: str | None) -> UserInfo | None:
    """The active user of this live token, or None (unknown, revoked, user disabled). Read-only."""
    if not raw or len(raw) != _LENGTH or not raw.startswith(TOKEN_PREFIX):
        return None
    with read_session(engine) as s:
        row = s.exec(select(ApiToken, User).join(User, col(User.id) == col(ApiToken.user_id))
                     .where(ApiToken.token_hash == digest(raw))).first()
    if row is None:
        return None
    token, user = row
    if token.revoked_at is not None or not user.active:
        return None
    info = _info(user)
    return info if info.role in tuple(Role) else None
