"""Users of the console and the CLI, and what their role allows.

Passwords are hashed with Argon2id (argon2-cffi); the hash carries its own parameters,
so raising the cost later only needs ``needs_rehash`` at the next login. Hashing and
verifying take a noticeable fraction of a second on purpose: callers in the web app run
them in the thread pool, never on the event loop.

Roles: a **viewer** reads everything; a **coordinator** also starts and aborts tests,
pauses schedules, edits the directory and approves corrections; a **reviewer** reads and
signs the monthly report; an **admin** may do all of it.
"""
from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from commtest.clock import Clock
from commtest.db import read_session, session_scope
from commtest.errors import CommtestError, NotFoundError, PermissionDenied
from commtest.models import ConsoleSession, LoginThrottle, Role, User

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,99}$")
_hasher = PasswordHasher()
# Argon2 hashes with four lanes, each in a thread of its own: one hash at a time already fills the
# cores. Ten sign-ins hashed at once (forty busy threads) left the acknowledgement pages beside
# them waiting seconds for a core; in line, each sign-in waits its turn instead, and a page gets
# its share at once. A check for a name that does not exist waits the same way.
_HASHING = threading.BoundedSemaphore(1)


def _hash(password: str) -> str:
    with _HASHING:
        return _hasher.hash(password)


def _verify(stored: str, password: str) -> bool:
    with _HASHING:
        return bool(_hasher.verify(stored, password))


class BadUserInput(CommtestError):
    exit_code = 2


# Who may change what the daemon does (start, abort, pause, edit the directory, approve).
OPERATING_ROLES = (Role.coordinator, Role.admin)
MIN_PASSWORD = 12


@dataclass(frozen=True)
class UserInfo:
    username: str
    display_name: str
    email: str | None
    role: Role
    active: bool
    created_at: datetime | None
    id: int = 0
    has_password: bool = False

    @property
    def label(self) -> str:
        """How the user is named to others: the display name, else the user name."""
        return self.display_name or self.username


def _info(user: User) -> UserInfo:
    return UserInfo(user.username, user.display_name, user.email, Role(user.role), user.active, user.created_at,
                    user.id or 0, bool(user.password_hash))


def add_user(
    engine: Engine,
    username: str,
    role: str,
    clock: Clock,
    *,
    display_name: str = "",
    email: str | None = None,
    password: str | None = None,
) -> UserInfo:
    """Create a user; refuses a malformed name, an unknown role, a bad e-mail or a duplicate."""
    if not _USERNAME.match(username):
        raise BadUserInput(
            f"username {username!r}: use 2-100 lowercase letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    try:
        parsed_role = Role(role)
    except ValueError:
        raise BadUserInput(f"role {role!r}: expected one of {', '.join(r.value for r in Role)}") from None
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise BadUserInput(f"--email {email}: {exc}") from exc
    if password is not None:
        check_password_quality(password)
    with session_scope(engine) as session:
        if session.exec(select(User).where(User.username == username)).first():
            raise BadUserInput(f"user {username!r} exists already; `commtest user list` shows the users")
        user = User(
            username=username,
            display_name=display_name,
            email=email,
            role=parsed_role.value,
            password_hash=_hash(password) if password else None,
            created_at=clock.now(),
        )
        session.add(user)
        session.flush()
        return _info(user)


def check_password_quality(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadUserInput(f"password: at least {MIN_PASSWORD} characters, please (a few words make a good one)")
    if len(password) > 1000:
        raise BadUserInput("password: at most 1000 characters")


def set_password(engine: Engine, username: str, password: str) -> UserInfo:
    """Give ``username`` a new password. Their console sessions end (a stolen session does
    not outlive a password change) and a lock-out from failed sign-ins is lifted."""
    check_password_quality(password)
    hashed = _hash(password)  # outside the transaction: it takes a while on purpose
    with session_scope(engine) as session:
        user = _require(session, username)
        user.password_hash = hashed
        session.add(user)
        _end_sessions(session, user.id or 0)
        session.execute(sa.delete(LoginThrottle).where(LoginThrottle.username == username))  # type: ignore[arg-type]
        session.flush()
        return _info(user)


def set_active(engine: Engine, username: str, active: bool) -> UserInfo:
    """Enable or disable ``username``; disabling ends their sessions at once, and their API
    tokens are refused from the next request on."""
    with session_scope(engine) as session:
        user = _require(session, username)
        user.active = active
        session.add(user)
        if not active:
            _end_sessions(session, user.id or 0)
        session.flush()
        return _info(user)


def _require(session: Session, username: str) -> User:
    user = session.exec(select(User).where(User.username == username)).first()
    if user is None:
        raise NotFoundError(f"user {username!r} does not exist; `commtest user list` shows the users")
    return user


def _end_sessions(session: Session, user_id: int) -> None:
    session.execute(sa.delete(ConsoleSession).where(ConsoleSession.user_id == user_id))  # type: ignore[arg-type]


def list_users(engine: Engine) -> list[UserInfo]:
    with read_session(engine) as session:
        return [_info(u) for u in session.exec(select(User).order_by(sa.text("username")))]


def get_user(engine: Engine, username: str) -> UserInfo:
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise NotFoundError(f"user {username!r} does not exist; `commtest user add` creates one")
        return _info(user)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hash("commtest-no-such-user")


def check_password(engine: Engine, username: str, password: str) -> bool:
    return verify_login(engine, username, password) is not None


def verify_login(engine: Engine, username: str, password: str) -> UserInfo | None:
    """The active user whose password this is, or None. Blocking (Argon2): call it from a
    thread, never from the event loop. The database is read first and the hash verified
    after, so no transaction stays open during the hashing."""
    with read_session(engine) as session:
        user = session.exec(select(User).where(User.username == username)).first()
        info = _info(user) if user is not None else None
        stored = user.password_hash if user is not None else None
    if info is None or not info.active or not stored:
        # Same work as a real check, so response times do not reveal which names exist.
        try:
            _verify(_dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            pass
        return None
    try:
        return info if _verify(stored, password) else None
    except (VerificationError, InvalidHashError):
        return None


def require_role(user: UserInfo, allowed: Iterable[Role], action: str) -> None:
    """Raise PermissionDenied naming the roles that may do ``action``."""
    allowed = tuple(allowed)
    if not user.active:
        raise PermissionDenied(f"user {user.username!r} is deactivated and may not {action}")
    if user.role not in allowed:
        names = " or ".join(r.value for r in allowed)
        raise PermissionDenied(
            f"user {user.username!r} has role {user.role.value}; only a {names} may {action}"
        )
