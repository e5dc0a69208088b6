"""A fake BigBlueButton API for the demo and the tests, with the server's checksum logic.

The checksum is checked the way the server checks it: the ``checksum`` parameter is cut
out of the query string as received, and the rest, prefixed with the call name and
followed by the shared secret, must hash to it (SHA-1/256/384/512, told apart by length).
``create`` is idempotent (``duplicateWarning``), ``join`` admits a guest (its ``userID``),
``getMeetingInfo`` lists the attendees, ``end`` ends the meeting. ``down = True`` makes
the server unreachable (503), as during an outage.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

import httpx

from channels.fake_http import raw_query
from channels.video.bigbluebutton import ALGORITHMS
from commtest.clock import Clock


@dataclass
class Meeting:
    meeting_id: str
    name: str
    internal_id: str
    attendee_pw: str
    moderator_pw: str
    create_time: int
    attendees: dict[str, str] = field(default_factory=dict)  # userID -> fullName


def strip_checksum(query: str) -> tuple[str, str]:
    """(query without the checksum parameter, checksum), as BigBlueButton cuts it."""
    value = (parse_qs(query).get("checksum") or [""])[0]
    for cut in (f"&checksum={value}", f"checksum={value}&", f"checksum={value}"):
        if cut in query:
            return query.replace(cut, "", 1), value
    return query, ""


class FakeBigBlueButton:
    def __init__(self, secret: str, clock: Clock) -> None:
        self.secret = secret
        self.clock = clock
        self.meetings: dict[str, Meeting] = {}
        self.ended: list[str] = []
        self.calls: list[str] = []
        self.down = False
        self._lock = threading.Lock()

    def checksum_ok(self, call: str, query: str) -> bool:
        rest, given = strip_checksum(query)
        algorithm = ALGORITHMS.get(len(given))
        if algorithm is None:
            return False
        expected = hashlib.new(algorithm, f"{call}{rest}{self.secret}".encode()).hexdigest()
        return hmac.compare_digest(expected, given.lower())

    def leave(self, meeting_id: str, user_id: str) -> None:
        with self._lock:
            self.meetings[meeting_id].attendees.pop(user_id, None)

    # -- HTTP ----------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(503, text="Service Unavailable")
        call = request.url.path.rstrip("/").rsplit("/", 1)[-1]
        self.calls.append(call)
        query = raw_query(request)
        if not self.checksum_ok(call, query):
            return _xml(_failed("checksumError", "You did not pass the checksum security check"))
        p = {k: v[0] for k, v in parse_qs(query).items()}
        handler = getattr(self, f"_{call}", None)
        if handler is None:
            return _xml(_failed("unsupportedRequest", "This request is not supported."))
        with self._lock:
            return handler(p)  # type: ignore[no-any-return]

    def _create(self, p: dict[str, str]) -> httpx.Response:
        mid = p.get("meetingID", "")
        if not mid:
            return _xml(_failed("missingParamMeetingID", "You must specify a meeting ID for the meeting."))
        m = self.meetings.get(mid)
        warning = ""
        if m is None:
            m = self.meetings[mid] = Meeting(mid, p.get("name", mid), uuid.uuid4().hex,
                                             p.get("attendeePW", "ap"), p.get("moderatorPW", "mp"),
                                             int(self.clock.now().timestamp() * 1000))
        else:
            warning = ("<messageKey>duplicateWarning</messageKey><message>This conference was already in existence "
                       "and may currently be in progress.</message>")
        return _xml(f"<returncode>SUCCESS</returncode><meetingID>{escape(mid)}</meetingID><internalMeetingID>"
                    f"{m.internal_id}</internalMeetingID><attendeePW>{escape(m.attendee_pw)}</attendeePW><moderatorPW>"
                    f"{escape(m.moderator_pw)}</moderatorPW><createTime>{m.create_time}</createTime>"
                    f"<hasUserJoined>false</hasUserJoined>{warning}")

    def _join(self, p: dict[str, str]) -> httpx.Response:
        m = self.meetings.get(p.get("meetingID", ""))
        if m is None:
            return _xml(_failed("notFound", "We could not find a meeting with that meeting ID."))
        if p.get("role") not in ("VIEWER", "MODERATOR") and p.get("password") not in (m.attendee_pw, m.moderator_pw):
            return _xml(_failed("invalidPassword", "You either did not supply a password or the password supplied is "
                                                   "neither the attendee or moderator password for this conference."))
        user = p.get("userID") or f"w_{uuid.uuid4().hex[:10]}"
        m.attendees[user] = p.get("fullName", "")
        return httpx.Response(200, text=f"<!DOCTYPE html><title>{escape(m.name)}</title><p>In the meeting.</p>",
                              headers={"Content-Type": "text/html; charset=utf-8"})

    def _getMeetingInfo(self, p: dict[str, str]) -> httpx.Response:  # noqa: N802 - the API's name
        m = self.meetings.get(p.get("meetingID", ""))
        if m is None:
            return _xml(_failed("notFound", "We could not find a meeting with that meeting ID"))
        return _xml(f"<returncode>SUCCESS</returncode>{_meeting(m)}")

    def _getMeetings(self, p: dict[str, str]) -> httpx.Response:  # noqa: N802
        inner = "".join(f"<meeting>{_meeting(m)}</meeting>" for m in self.meetings.values())
        return _xml(f"<returncode>SUCCESS</returncode><meetings>{inner}</meetings>")

    def _isMeetingRunning(self, p: dict[str, str]) -> httpx.Response:  # noqa: N802
        m = self.meetings.get(p.get("meetingID", ""))
        running = "true" if m is not None and m.attendees else "false"
        return _xml(f"<returncode>SUCCESS</returncode><running>{running}</running>")

    def _end(self, p: dict[str, str]) -> httpx.Response:
        m = self.meetings.pop(p.get("meetingID", ""), None)
        if m is None:
            return _xml(_failed("notFound", "We could not find a meeting with that meeting ID - perhaps the meeting "
                                            "is not yet running?"))
        self.ended.append(m.meeting_id)
        return _xml("<returncode>SUCCESS</returncode><messageKey>sentEndMeetingRequest</messageKey><message>A request "
                    "to end the meeting was sent.</message>")


def _meeting(m: Meeting) -> str:
    people = "".join(
        f"<attendee><userID>{escape(uid)}</userID><fullName>{escape(name)}</fullName><role>VIEWER</role>"
        f"<isPresenter>false</isPresenter><isListeningOnly>false</isListeningOnly><hasJoinedVoice>false"
        f"</hasJoinedVoice><hasVideo>true</hasVideo><clientType>HTML5</clientType></attendee>"
        for uid, name in m.attendees.items())
    return (f"<meetingName>{escape(m.name)}</meetingName><meetingID>{escape(m.meeting_id)}</meetingID>"
            f"<internalMeetingID>{m.internal_id}</internalMeetingID><createTime>{m.create_time}</createTime>"
            f"<running>{'true' if m.attendees else 'false'}</running><participantCount>{len(m.attendees)}"
            f"</participantCount><moderatorCount>0</moderatorCount><attendees>{people}</attendees>")


def _failed(key: str, message: str) -> str:
    return f"<returncode>FAILED</returncode><messageKey>{key}</messageKey><message>{escape(message)}</message>"


def _xml(inner: str) -> httpx.Response:
    return httpx.Response(200, text=f"<response>{inner}</response>", headers={"Content-Type": "text/xml;charset=utf-8"})
