"""Console sessions and form tokens, signed with the app's CSRF key (``web.csrf.CsrfSigner``).

The session cookie is ``B64(username).ISSUED.HMAC(secret, "console-session:" + username|ISSUED)``:
stateless, so it survives a restart only when ``COMMTEST_SECRET_KEY`` is set (same rule as the
ack pages). It expires after ``SESSION_LIFETIME`` on the server's clock, whatever the browser
keeps. A form token is bound to the session cookie, so a token from another session (or
another user) is refused. Both payloads carry a prefix so they can never be mistaken for an
ack page's token hash (hex) signed with the same key.
"""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from commtest.errors import CommtestError
from commtest.users import UserInfo, get_user
from web.csrf import CsrfSigner

COOKIE_NAME = "commtest_console"
COOKIE_PATH = "/console"
SESSION_LIFETIME = timedelta(hours=8)


@dataclass(frozen=True)
class Session:
    user: UserInfo
    cookie: str  # the cookie's value, to which form tokens are bound


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _unb64(text: str) -> str | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class SessionKeeper:
    def __init__(self, signer: CsrfSigner, engine: Engine, lifetime: timedelta = SESSION_LIFETIME) -> None:
        self.signer = signer
        self.engine = engine
        self.lifetime = lifetime

    def issue(self, username: str) -> str:
        return f"{_b64(username)}.{self.signer.issue(f'console-session:{username}')}"

    def _fresh(self, stamp: str) -> bool:
        # CsrfSigner allows its own (longer) max age; a session lives SESSION_LIFETIME.
        now = self.signer.clock.now()
        issued = datetime.fromtimestamp(int(stamp.split(".", 1)[0]), tz=now.tzinfo)
        return now - issued <= self.lifetime

    def read(self, cookie: str | None) -> Session | None:
        """The signed-in, still active user, or None (no cookie, forged, expired, deactivated)."""
        if not cookie or cookie.count(".") != 2:
            return None
        encoded, stamp = cookie.split(".", 1)
        username = _unb64(encoded)
        if not username or not self.signer.check(f"console-session:{username}", stamp) or not self._fresh(stamp):
            return None
        try:
            user = get_user(self.engine, username)
        except CommtestError:  # deleted since the cookie was issued
            return None
        return Session(user, cookie) if user.active else None

    def form_token(self, session: Session) -> str:
        return self.signer.issue(f"console-form:{session.cookie}")

    def check_form_token(self, session: Session, value: object) -> bool:
        return isinstance(value, str) and self.signer.check(f"console-form:{session.cookie}", value)
