"""The acknowledgement form's CSRF field: its documented MAC, so that a field issued by an
earlier version (a page left open across an upgrade) is still accepted."""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

from commtest.clock import FrozenClock
from web.csrf import CsrfSigner

SECRET = b"test-only-secret"
HASH = "ab" * 32


def test_the_field_is_the_moment_and_the_hmac_sha256_of_the_token_hash_and_that_moment() -> None:
    clock = FrozenClock(datetime(2026, 12, 8, 9, 30, tzinfo=timezone.utc))
    field = CsrfSigner(SECRET, clock).issue(HASH)
    issued = str(int(clock.now().timestamp()))
    assert field == f"{issued}.{hmac.new(SECRET, f'{HASH}|{issued}'.encode(), hashlib.sha256).hexdigest()}"


def test_a_field_made_as_documented_is_accepted_and_one_of_another_key_ping_or_age_is_not() -> None:
    clock = FrozenClock(datetime(2026, 12, 8, 9, 30, tzinfo=timezone.utc))
    signer = CsrfSigner(SECRET, clock)
    issued = str(int(clock.now().timestamp()))
    assert signer.check(HASH, f"{issued}.{hmac.digest(SECRET, f'{HASH}|{issued}'.encode(), 'sha256').hex()}")
    assert not signer.check(HASH, CsrfSigner(b"another key", clock).issue(HASH))
    assert not signer.check("cd" * 32, signer.issue(HASH))
    old = signer.issue(HASH)
    clock.advance(hours=13)
    assert not signer.check(HASH, old)
    assert signer.check(HASH, signer.issue(HASH))  # the key's state is copied per field, never used up
