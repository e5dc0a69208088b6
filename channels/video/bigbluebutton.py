"""BigBlueButton (``video.bigbluebutton``): the checksum-signed API, presence by polling.

Every call is ``{api}/{call}?{query}&checksum=H(call + query + secret)``, with ``H`` the
server's checksum algorithm (SHA-1 in the API's documented example; SHA-256/384/512 on
servers that allow them): the checksum covers the query exactly as sent, so the query is
encoded once, here, and sent unchanged.

``create`` opens the run's meeting (idempotent: the same meetingID answers
``duplicateWarning``), with the expiry parameters set so that BigBlueButton does not end
an empty room before the officers come, and ends it by itself after
``video_room_max_minutes`` should the run's end never close it. A join link is a signed
``join`` URL with the contact point's identity as ``userID``; ``getMeetingInfo`` lists the
attendees by that ``userID``; ``end`` closes the room. It tells no join time: a join is
recorded at the poll that first saw it.
"""
from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from urllib.parse import urlencode
from xml.etree.ElementTree import Element

import httpx
from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from channels.video.bridge import Guest, Presence, Room, display_name
from channels.video.channel import VideoChannel
from channels.video.identity import guest_identity, parse_identity, room_name, room_password, run_of_room
from channels.video.invite import InviteCourier, SmtpInviteCourier
from commtest.clock import Clock
from commtest.errors import ChannelError, ConfigError
from commtest.settings import ENV_PREFIX, Settings

log = logging.getLogger(__name__)

ALGORITHMS = {40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512"}  # hex length -> algorithm
MAX_RESPONSE_BYTES = 1_048_576


def checksum(call: str, query: str, secret: str, algorithm: str = "sha1") -> str:
    """BigBlueButton's checksum: the hex digest of call name + query string + shared secret."""
    if algorithm not in ALGORITHMS.values():
        raise ValueError(f"unknown checksum algorithm {algorithm!r}; expected one of {', '.join(ALGORITHMS.values())}")
    return hashlib.new(algorithm, f"{call}{query}{secret}".encode()).hexdigest()


def signed_query(call: str, params: dict[str, str], secret: str, algorithm: str) -> str:
    query = urlencode(params)
    return f"{query}&checksum={checksum(call, query, secret, algorithm)}" if query else \
        f"checksum={checksum(call, '', secret, algorithm)}"


class BigBlueButtonBridge:
    provider = "bigbluebutton"
    polls = True
    observes_presence = True

    def __init__(self, api_url: str, secret: str, clock: Clock, *, algorithm: str = "sha256",
                 client: httpx.Client | None = None, timeout: float = 10.0, max_minutes: int = 240) -> None:
        self.api_url = api_url.rstrip("/")
        self.secret = secret
        self.clock = clock
        self.algorithm = algorithm
        self.max_minutes = max_minutes
        self._client = client
        self._own_client = client is None
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock, client: httpx.Client | None = None) -> BigBlueButtonBridge:
        missing = [n for n in ("bigbluebutton_url", "bigbluebutton_secret") if not getattr(settings, n)]
        if missing:
            raise ConfigError(f"the video provider 'bigbluebutton' needs "
                              f"{', '.join(ENV_PREFIX + n.upper() for n in missing)} (see docs/channels/video.md)")
        assert settings.bigbluebutton_url and settings.bigbluebutton_secret
        return cls(settings.bigbluebutton_url, settings.bigbluebutton_secret.get_secret_value(), clock,
                   algorithm=settings.bigbluebutton_checksum, client=client, timeout=settings.video_timeout_seconds,
                   max_minutes=settings.video_room_max_minutes)

    def url(self, call: str, params: dict[str, str]) -> str:
        return f"{self.api_url}/{call}?{signed_query(call, params, self.secret, self.algorithm)}"

    # -- VideoBridge -------------------------------------------------------------
    def room_for(self, run_id: int) -> Room:
        name = room_name(self.secret, run_id)
        server = self.api_url[: -len("/api")] if self.api_url.endswith("/api") else self.api_url
        return Room(run_id, name, f"{server} (meeting {name})")

    def guest(self, room: Room, ping_id: int, organisation_code: str, contact_name: str) -> Guest:
        return Guest(guest_identity(self.secret, room.run_id, ping_id, organisation_code),
                     display_name(contact_name, organisation_code), organisation_code, ping_id)

    def open_room(self, room: Room, until: datetime) -> None:
        minutes = str(self.max_minutes)
        self._call("create", {
            "name": f"Communication test {room.run_id}", "meetingID": room.name,
            "attendeePW": room_password(self.secret, room.run_id, "attendee"),
            "moderatorPW": room_password(self.secret, room.run_id, "moderator"),
            "record": "false", "duration": minutes,
            # BigBlueButton ends a room nobody joined after 5 minutes by default: too soon here.
            "meetingExpireIfNoUserJoinedInMinutes": minutes, "meetingExpireWhenLastUserLeftInMinutes": minutes,
            "meta_commtest-run": str(room.run_id),
        })

    def join_link(self, room: Room, guest: Guest, expires_at: datetime) -> str:
        return self.url("join", {
            "fullName": guest.display_name, "meetingID": room.name, "role": "VIEWER",
            "password": room_password(self.secret, room.run_id, "attendee"),  # servers before 2.4 want it
            "userID": guest.identity, "redirect": "true",
        })

    def presence(self, room: Room) -> list[Presence]:
        info = self._call("getMeetingInfo", {"meetingID": room.name}, missing_ok=True)
        if info is None:
            return []  # not running (not created yet, or ended): nobody is in it
        now = self.clock.now()
        internal = info.findtext("internalMeetingID") or room.name
        out = []
        for attendee in info.iter("attendee"):
            identity = (attendee.findtext("userID") or "").strip()
            ref = parse_identity(self.secret, identity)
            if ref is None or ref.run_id != room.run_id:
                continue  # a moderator, a guest without our link, someone else's link
            out.append(Presence(f"{internal}/{identity}", identity, room.name, now,
                                (attendee.findtext("fullName") or "")[:200]))
        return out

    def close_room(self, room: Room) -> None:
        self._call("end", {"meetingID": room.name, "password": room_password(self.secret, room.run_id, "moderator")},
                   missing_ok=True)

    def existing_rooms(self) -> list[Room]:
        doc = self._call("getMeetings", {})
        rooms = []
        for meeting in (doc.iter("meeting") if doc is not None else []):
            name = meeting.findtext("meetingID") or ""
            run_id = run_of_room(self.secret, name)
            if run_id is not None:
                rooms.append(self.room_for(run_id))
        return rooms

    def close(self) -> None:
        if self._client is not None and self._own_client:
            self._client.close()
            self._client = None

    # -- the API -----------------------------------------------------------------
    def _call(self, call: str, params: dict[str, str], *, missing_ok: bool = False) -> Element | None:
        if self._client is None:
            self._client = httpx.Client(timeout=self.timeout, follow_redirects=False)
        try:
            r = self._client.get(self.url(call, params))
        except httpx.HTTPError as exc:
            raise ChannelError(f"BigBlueButton unreachable ({call}): {type(exc).__name__}: {exc}",
                               code="bridge-down") from exc
        if r.status_code != 200:
            raise ChannelError(f"BigBlueButton answered HTTP {r.status_code} to {call}", code=f"bbb-{r.status_code}")
        if len(r.content) > MAX_RESPONSE_BYTES:
            raise ChannelError(f"BigBlueButton's answer to {call} is larger than {MAX_RESPONSE_BYTES} bytes",
                               code="bbb-response")
        try:
            doc: Element = SafeET.fromstring(r.content)
        except (SafeET.ParseError, DefusedXmlException) as exc:
            raise ChannelError(f"BigBlueButton's answer to {call} is not XML: {exc}", code="bbb-response") from exc
        if doc.findtext("returncode") == "SUCCESS":
            return doc
        key = doc.findtext("messageKey") or ""
        if missing_ok and key in ("notFound", "invalidMeetingIdentifier"):
            return None
        if key == "checksumError":
            raise ChannelError(f"BigBlueButton refused our checksum ({call}): check {ENV_PREFIX}BIGBLUEBUTTON_SECRET "
                               f"and {ENV_PREFIX}BIGBLUEBUTTON_CHECKSUM", code="bbb-checksum")
        raise ChannelError(f"BigBlueButton refused {call}: {key} {doc.findtext('message') or ''}".strip(),
                           code=f"bbb-{key or 'failed'}")


class BigBlueButtonChannel:
    """``video.bigbluebutton`` as the registry creates it."""

    provider = "bigbluebutton"

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> VideoChannel:
        if kind != "video":
            raise ChannelError(f"the bigbluebutton provider serves the video kind only, not {kind!r}", permanent=True)
        return bigbluebutton_channel(settings, clock)


def bigbluebutton_channel(settings: Settings, clock: Clock, *, client: httpx.Client | None = None,
                          courier: InviteCourier | None = None, simulated: bool = False) -> VideoChannel:
    bridge = BigBlueButtonBridge.from_settings(settings, clock, client)
    return VideoChannel(bridge, courier or SmtpInviteCourier(settings, clock), clock,
                        poll_every=timedelta(seconds=settings.bigbluebutton_poll_seconds),
                        final_poll_margin=timedelta(seconds=2 * settings.tick_seconds),
                        join_grace=settings.video_join_grace, room_minutes=settings.video_room_max_minutes,
                        simulated=simulated)
