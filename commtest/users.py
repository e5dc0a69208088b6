"""Users of the console and the CLI, and what their role allows.

Passwords are hashed with Argon2id (argon2-cffi); the hash carries its own parameters,
so raising the cost later only needs ``needs_rehash`` at the next login.
"""
from __future__ import annotations

import functools

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email
from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.clock import Clock
from commtest.db import session_scope
from commtest.errors import CommtestError, NotFoundError, PermissionDenied
from commtest.models import Role, User

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,99}$")
_hasher = PasswordHasher()


class BadUserInput(CommtestError):
    exit_code = 2


@dataclass(frozen=True)
class UserInfo:
    username: str
    display_name: str
    email: str | None
    role: Role
    active: bool
    created_at: datetime | None


def _info(user: User) -> UserInfo:
    return UserInfo(user.username, user.display_name, user.email, Role(user.role), user.active, user.created_at)


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
    if password is not None and len(password) < 12:
        raise BadUserInput("password: at least 12 characters, please")
    with session_scope(engine) as session:
        if session.exec(select(User).where(User.username == username)).first():
            raise BadUserInput(f"user {username!r} exists already; `commtest user list` shows the users")
        user = User(
            username=username,
            display_name=display_name,
            email=email,
            role=parsed_role.value,
            password_hash=_hasher.hash(password) if password else None,
            created_at=clock.now(),
        )
        session.add(user)
        session.flush()
        return _info(user)


def list_users(engine: Engine) -> list[UserInfo]:
    with session_scope(engine) as session:
        return [_info(u) for u in session.exec(select(User).order_by(sa.text("username")))]


def get_user(engine: Engine, username: str) -> UserInfo:
    with session_scope(engine) as session:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None:
            raise NotFoundError(f"user {username!r} does not exist; `commtest user add` creates one")
        return _info(user)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("commtest-no-such-user")


def check_password(engine: Engine, username: str, password: str) -> bool:
    with session_scope(engine) as session:
        user = session.exec(select(User).where(User.username == username)).first()
        if user is None or not user.active or not user.password_hash:
            # Same work as a real check, so response times do not reveal which names exist.
            try:
                _hasher.verify(_dummy_hash(), password)
            except (VerificationError, InvalidHashError):
                pass
            return False
        try:
            return _hasher.verify(user.password_hash, password)
        except (VerificationError, InvalidHashError):
            return False


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
