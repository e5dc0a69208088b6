"""Jitsi Meet, self-hosted (``video.jitsi``): JWT join links, presence from Prosody's
``event_sync`` module.

Join links are ``{jitsi_url}/{room}?jwt=...``, signed HS256 with Prosody's ``app_secret``
(``iss`` = app_id, ``aud``, ``sub`` = domain or tenant, ``room``, ``exp``) and carrying the
contact point's identity in ``context.user.id``. Prosody (``token_verification``) admits a
link to its room only, until it expires.

Presence: event_sync POSTs ``{api_prefix}/events/occupant/joined`` (and ``left``,
``room/created``, ``room/destroyed``) with the JWT user context of the occupant and a static
header of our choosing (``api_headers = {["Authorization"] = "Bearer ..."}``): a shared secret,
compared in constant time, which only TLS keeps secret (event_sync signs nothing). A proxy
that can sign may send ``X-Commtest-Signature: sha256=<hex of HMAC-SHA256(secret, body)>``
instead, with the same secret: that also proves the body unaltered. The payloads
carry no event id, so a join is named by its room, occupant JID and ``joined_at``: the
module's retries then de-duplicate. A left event carries ``joined_at`` too, so a join whose
own event was lost is still seen, and a leave never undoes a join.

Rooms exist while someone is in them; a run's room is ended at the run's end through
Prosody's ``mod_muc_end_meeting`` (``POST /end-meeting?conference=ROOM@MUC``) when
``jitsi_end_meeting_url`` is set.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from channels.base import ChannelReport
from channels.video.bridge import Guest, Presence, Room, display_name
from channels.video.channel import METHOD, VideoChannel
from channels.video.identity import guest_identity, parse_identity, room_name, run_of_room
from channels.video.invite import InviteCourier, SmtpInviteCourier
from commtest.clock import UTC, Clock
from commtest.errors import ChannelError, ConfigError
from commtest.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)

EVENTS = ("muc-occupant-joined", "muc-occupant-left", "muc-room-created", "muc-room-destroyed")
SIGNATURE_HEADER = "X-Commtest-Signature"  # the same form as the CAP links' (channels/cap/signing.py)


class JitsiBridge:
    provider = "jitsi"
    polls = False

    def __init__(self, base_url: str, app_id: str, app_secret: str, clock: Clock, *, audience: str = "jitsi",
                 subject: str | None = None, observes_presence: bool = True, end_meeting_url: str | None = None,
                 muc_domain: str | None = None, client: httpx.Client | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.app_id = app_id
        self.secret = app_secret
        self.clock = clock
        self.audience = audience
        self.subject = subject or (urlsplit(self.base_url).hostname or "").lower()
        self.observes_presence = observes_presence
        self.end_meeting_url = end_meeting_url
        self.muc_domain = muc_domain or f"conference.{self.subject}"
        self._client = client
        self._own_client = client is None
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock, client: httpx.Client | None = None) -> JitsiBridge:
        missing = [n for n in ("jitsi_url", "jitsi_app_secret") if not getattr(settings, n)]
        if missing:
            raise ConfigError(f"the video provider 'jitsi' needs {', '.join(ENV_PREFIX + n.upper() for n in missing)} "
                              "(see docs/channels/video.md)")
        if settings.jitsi_presence == "webhook" and settings.jitsi_webhook_token is None:
            raise ConfigError(f"{ENV_PREFIX}JITSI_PRESENCE=webhook needs {ENV_PREFIX}JITSI_WEBHOOK_TOKEN, the bearer "
                              "token Prosody's event_sync sends (or set JITSI_PRESENCE=none: officers then report "
                              "their join themselves)")
        assert settings.jitsi_url and settings.jitsi_app_secret
        return cls(settings.jitsi_url, settings.jitsi_app_id, settings.jitsi_app_secret.get_secret_value(), clock,
                   audience=settings.jitsi_audience, subject=settings.jitsi_subject,
                   observes_presence=settings.jitsi_presence == "webhook",
                   end_meeting_url=settings.jitsi_end_meeting_url, muc_domain=settings.jitsi_muc_domain,
                   client=client, timeout=settings.video_timeout_seconds)

    # -- VideoBridge -------------------------------------------------------------
    def room_for(self, run_id: int) -> Room:
        name = room_name(self.secret, run_id)
        return Room(run_id, name, f"{self.base_url}/{name}")

    def guest(self, room: Room, ping_id: int, organisation_code: str, contact_name: str) -> Guest:
        return Guest(guest_identity(self.secret, room.run_id, ping_id, organisation_code),
                     display_name(contact_name, organisation_code), organisation_code, ping_id)

    def open_room(self, room: Room, until: datetime) -> None:
        pass  # Jitsi makes the room when the first guest joins; the link's 'room' claim admits this one only

    def join_link(self, room: Room, guest: Guest, expires_at: datetime) -> str:
        return f"{room.url}?jwt={self.token(room.name, guest, expires_at)}"

    def token(self, room: str, guest: Guest | None, expires_at: datetime) -> str:
        now = self.clock.now()
        claims: dict[str, Any] = {
            "iss": self.app_id, "aud": self.audience, "sub": self.subject, "room": room,
            "iat": int(now.timestamp()), "nbf": int(now.timestamp()) - 60, "exp": int(expires_at.timestamp()),
        }
        if guest is not None:
            claims["context"] = {"user": {"id": guest.identity, "name": guest.display_name},
                                 "group": guest.organisation_code}
        return jwt.encode(claims, self.secret, algorithm="HS256")

    def presence(self, room: Room) -> list[Presence]:
        return []  # pushed by event_sync to the web app

    def close_room(self, room: Room) -> None:
        if not self.end_meeting_url:
            return  # the room empties by itself; its links expire
        bearer = self.token(room.name, None, self.clock.now() + timedelta(minutes=5))
        try:
            r = self._http().post(self.end_meeting_url, params={"conference": f"{room.name}@{self.muc_domain}"},
                                  headers={"Authorization": f"Bearer {bearer}"})
        except httpx.HTTPError as exc:
            raise ChannelError(f"Jitsi end-meeting unreachable: {type(exc).__name__}: {exc}", code="bridge-down") from exc
        if r.status_code == 404 or 200 <= r.status_code < 300:
            return  # 404: nobody left in it, already gone
        raise ChannelError(f"Jitsi end-meeting answered {r.status_code}", code=f"jitsi-{r.status_code}")

    def existing_rooms(self) -> list[Room]:
        return []

    def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        return self._client


def verify_bearer(header: str | None, token: str) -> bool:
    """event_sync sends a static header; compared in constant time."""
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


def sign(secret: str, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of the raw body with the webhook secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str) -> bool:
    """A signing proxy's ``X-Commtest-Signature`` over the exact body, in constant time."""
    if not header.startswith("sha256="):
        return False
    return hmac.compare_digest(sign(secret, body).encode(), header.strip().encode())


def event_reports(payload: Any, secret: str, now: datetime) -> list[ChannelReport]:
    """The joins an event_sync payload proves, as ``acked`` reports (method ``video-join``).

    Only occupants whose JWT identity we signed count, and only in that identity's run's
    room: a guest without a token, a coordinator, or someone else's link changes nothing.
    Raises ``ValueError`` for a payload that is not an event_sync event."""
    if not isinstance(payload, dict) or payload.get("event_name") not in EVENTS:
        raise ValueError("expected an event_sync event (event_name muc-occupant-joined, muc-occupant-left, ...)")
    room = str(payload.get("room_name") or "")
    run_id = run_of_room(secret, room)
    if run_id is None:
        return []  # not one of our rooms
    event = str(payload["event_name"])
    if event in ("muc-occupant-joined", "muc-occupant-left"):
        occupants = [payload.get("occupant")]
    elif event == "muc-room-destroyed":
        occupants = list(payload.get("all_occupants") or [])
    else:
        return []
    out = []
    for occ in occupants:
        if not isinstance(occ, dict):
            continue
        identity = str(occ.get("id") or "")
        ref = parse_identity(secret, identity)
        if ref is None or ref.run_id != run_id:
            continue  # someone else: no identity of ours, or one for another run's room
        joined = _instant(occ.get("joined_at"), now)
        event_id = f"{payload.get('room_jid') or room}/{occ.get('occupant_jid', '')}/{occ.get('joined_at', '')}"
        out.append(ChannelReport("acked", joined, provider_ref=identity, method=METHOD,
                                 by=str(occ.get("name") or "")[:200] or None,
                                 extra={"event_id": event_id, "event": event}))
    return out


def _instant(value: Any, now: datetime) -> datetime:
    """event_sync's ``joined_at`` (Unix seconds, Prosody's clock); never later than now."""
    try:
        at = datetime.fromtimestamp(float(value), UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return now
    return min(at, now)


class JitsiChannel:
    """``video.jitsi`` as the registry creates it: settings in, a ``VideoChannel`` out."""

    provider = "jitsi"

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> VideoChannel:
        if kind != "video":
            raise ChannelError(f"the jitsi provider serves the video kind only, not {kind!r}", permanent=True)
        return jitsi_channel(settings, clock)


def jitsi_channel(settings: Settings, clock: Clock, *, client: httpx.Client | None = None,
                  courier: InviteCourier | None = None, simulated: bool = False) -> VideoChannel:
    bridge = JitsiBridge.from_settings(settings, clock, client)
    return VideoChannel(bridge, courier or SmtpInviteCourier(settings, clock), clock,
                        poll_every=timedelta(minutes=1), final_poll_margin=timedelta(seconds=2 * settings.tick_seconds),
                        join_grace=settings.video_join_grace, room_minutes=settings.video_room_max_minutes,
                        simulated=simulated)
