"""CSRF field of the ack form: ``ISSUED.HMAC(secret, token_hash + ISSUED)``.

Bound to the ping (through its token hash) and to the moment the page was served, so a
POST needs a page that this server rendered for this link, recently. The secret comes
from ``settings.secret_key``; without one a random per-process key is used (fine for
one process; with several replicas a page served by one would fail on another).
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import datetime, timedelta

from commtest.clock import Clock
from commtest.settings import Settings

log = logging.getLogger(__name__)

CSRF_FIELD = "csrf"
DEFAULT_MAX_AGE = timedelta(hours=12)  # an officer may open the page and press the button later


class CsrfSigner:
    def __init__(self, secret: bytes, clock: Clock, max_age: timedelta = DEFAULT_MAX_AGE) -> None:
        # The key's HMAC state made once and copied per field: the same MAC as hmac.digest(secret, …)
        # in two thirds of the time (a form page and an answer each make one).
        self._keyed = hmac.new(secret, digestmod=hashlib.sha256)
        self.clock = clock
        self.max_age = max_age

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> CsrfSigner:
        if settings.secret_key is not None and settings.secret_key.get_secret_value():
            return cls(settings.secret_key.get_secret_value().encode(), clock)
        log.warning("COMMTEST_SECRET_KEY is not set: CSRF fields are signed with a per-process random key "
                    "(pages served before a restart, or by another replica, will be refused)")
        return cls(secrets.token_bytes(32), clock)

    def _mac(self, token_hash: str, issued: str) -> str:
        mac = self._keyed.copy()
        mac.update(f"{token_hash}|{issued}".encode())
        return mac.hexdigest()

    def issue(self, token_hash: str) -> str:
        issued = str(int(self.clock.now().timestamp()))
        return f"{issued}.{self._mac(token_hash, issued)}"

    def check(self, token_hash: str, value: str | None) -> bool:
        if not value or "." not in value:
            return False
        issued, mac = value.split(".", 1)
        if not issued.isdigit() or not hmac.compare_digest(mac, self._mac(token_hash, issued)):
            return False
        age = self.clock.now() - datetime.fromtimestamp(int(issued), tz=self.clock.now().tzinfo)
        return timedelta(seconds=-60) <= age <= self.max_age
