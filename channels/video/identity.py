"""Names a bridge sees, derived from the run and the ping with the bridge's secret.

Derived, not stored: the daemon that sends the invitation and the web app that shows the
join link (maybe another replica) compute the same room and the same identity, and a
webhook's identity can be checked (its MAC) before the database is asked about it. The
MAC also makes room names unguessable, and an identity unforgeable without the secret.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

ROOM_PREFIX = "commtest-run-"
_ROOM_RE = re.compile(r"^commtest-run-(\d{1,12})-([0-9a-f]{10})$")
# ct-<run>-<ping>-<organisation code>-<mac>; organisation codes contain '-', the MAC ends it.
_IDENTITY_RE = re.compile(r"^ct-(\d{1,12})-(\d{1,12})-([A-Za-z0-9._-]{1,40})-([0-9a-f]{16})$")


def _mac(secret: str, *parts: object) -> str:
    return hmac.new(secret.encode(), "|".join(str(p) for p in parts).encode(), hashlib.sha256).hexdigest()


def room_name(secret: str, run_id: int) -> str:
    """The run's room: ``commtest-run-42-<mac>`` (lowercase, safe in every bridge's URLs)."""
    return f"{ROOM_PREFIX}{run_id}-{_mac(secret, 'room', run_id)[:10]}"


def run_of_room(secret: str, name: str) -> int | None:
    """The run whose room this is, or None when the name is not one of ours."""
    m = _ROOM_RE.match(name or "")
    if not m or not hmac.compare_digest(m.group(2), _mac(secret, "room", int(m.group(1)))[:10]):
        return None
    return int(m.group(1))


def room_password(secret: str, run_id: int, role: str) -> str:
    """A per-run password for bridges that still want one (BigBlueButton's attendeePW/moderatorPW)."""
    return _mac(secret, "password", role, run_id)[:20]


@dataclass(frozen=True)
class GuestRef:
    run_id: int
    ping_id: int
    organisation_code: str


def guest_identity(secret: str, run_id: int, ping_id: int, organisation_code: str) -> str:
    """The identity a join link carries (Jitsi's context.user.id, BigBlueButton's userID).
    It is also the ping's ``provider_ref``, so a join finds its ping."""
    return f"ct-{run_id}-{ping_id}-{organisation_code}-{_mac(secret, 'guest', run_id, ping_id, organisation_code)[:16]}"


def parse_identity(secret: str, identity: str) -> GuestRef | None:
    """The run, ping and organisation behind an identity we made; None for anyone else's."""
    m = _IDENTITY_RE.match(identity or "")
    if not m:
        return None
    run_id, ping_id, org, mac = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
    if not hmac.compare_digest(mac, _mac(secret, "guest", run_id, ping_id, org)[:16]):
        return None
    return GuestRef(run_id, ping_id, org)
