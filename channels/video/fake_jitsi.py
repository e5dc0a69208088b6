"""A fake self-hosted Jitsi Meet for the demo and the tests: Prosody's token check on a join
link, ``mod_muc_end_meeting``, and ``event_sync``'s webhooks, with scripted guests.

``join(url)`` is a guest opening a join link: the JWT is verified as Prosody's
``token_verification`` does (signature, ``iss``, ``aud``, ``exp``, the ``room`` claim against
the room in the URL), and the events event_sync would send are queued; ``flush(post)``
sends them, each with the configured ``Authorization`` header, to ``{api_prefix}/events/...``
(``signing_proxy``: as a proxy in front of commtest would, signed with HMAC-SHA256 over the body
in ``X-Commtest-Signature`` instead, and without the bearer).
Over HTTP (``handle_request``), ``GET /{room}?jwt=...`` is a join and
``POST /end-meeting?conference=ROOM@MUC`` ends a room.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt

from commtest.clock import Clock


class JoinRefused(Exception):
    """What Prosody would refuse: a missing, forged, expired or other room's token."""


@dataclass
class Occupant:
    room: str
    occupant_jid: str
    joined_at: int
    name: str | None
    id: str | None
    left_at: int | None = None

    def data(self) -> dict[str, Any]:
        d: dict[str, Any] = {"occupant_jid": self.occupant_jid, "joined_at": self.joined_at}
        if self.left_at is not None:
            d["left_at"] = self.left_at
        if self.name is not None:
            d["name"] = self.name
        if self.id is not None:
            d["id"] = self.id
        return d


@dataclass
class _Room:
    name: str
    created_at: int
    active: dict[str, Occupant] = field(default_factory=dict)
    everyone: list[Occupant] = field(default_factory=list)


class FakeJitsi:
    def __init__(self, app_secret: str, clock: Clock, *, app_id: str = "commtest", audience: str = "jitsi",
                 subject: str = "meet.commtest.example", webhook_token: str | None = None,
                 muc_domain: str | None = None, allow_guests: bool = False) -> None:
        self.secret = app_secret
        self.clock = clock
        self.app_id = app_id
        self.audience = audience
        self.subject = subject
        self.webhook_token = webhook_token
        self.muc_domain = muc_domain or f"conference.{subject}"
        self.allow_guests = allow_guests  # allow_empty_token: guests without a token may join
        self.signing_proxy = False  # the events pass a proxy that signs them and drops the bearer
        self.rooms: dict[str, _Room] = {}
        self.ended: list[str] = []  # rooms ended through /end-meeting
        self.outbox: list[tuple[str, dict[str, Any]]] = []
        self.sent: list[tuple[str, dict[str, Any], int]] = []
        self.by_token: dict[str, Occupant] = {}  # who came in with which link
        self._lock = threading.Lock()

    # -- guests ------------------------------------------------------------------
    def join(self, join_url: str) -> Occupant:
        parts = urlsplit(join_url)
        room = parts.path.rstrip("/").rsplit("/", 1)[-1]
        token = (parse_qs(parts.query).get("jwt") or [""])[0]
        if not token:
            if not self.allow_guests:
                raise JoinRefused("no token: this Jitsi admits token holders only")
            return self._enter(room, None, "Guest")
        claims = self.verify(token)
        if claims.get("room") not in (room, "*"):
            raise JoinRefused(f"the token is for room {claims.get('room')!r}, not {room!r}")
        user = (claims.get("context") or {}).get("user") or {}
        occupant = self._enter(room, user.get("id"), user.get("name"))
        self.by_token[token] = occupant
        return occupant

    def join_as_guest(self, room: str, name: str) -> Occupant:
        """Someone without a token (only when guests are allowed): event_sync reports no id."""
        return self._enter(room, None, name)

    def verify(self, token: str) -> dict[str, Any]:
        try:
            # Times are checked against the injected clock below, not the machine's.
            claims: dict[str, Any] = jwt.decode(
                token, self.secret, algorithms=["HS256"], audience=self.audience, issuer=self.app_id,
                options={"require": ["exp", "iss", "aud", "room"], "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise JoinRefused(f"token refused: {exc}") from exc
        now = self.clock.now().timestamp()
        if claims["exp"] < now or claims.get("nbf", 0) > now:
            raise JoinRefused("token expired or not valid yet")
        if claims.get("sub") not in (self.subject, "*"):
            raise JoinRefused(f"token for {claims.get('sub')!r}, not {self.subject!r}")
        return claims

    def leave(self, occupant: Occupant) -> None:
        with self._lock:
            room = self.rooms.get(occupant.room)
            if room is None or occupant.occupant_jid not in room.active:
                return
            del room.active[occupant.occupant_jid]
            occupant.left_at = self._now()
            self._queue("/events/occupant/left", room, {"event_name": "muc-occupant-left", "occupant": occupant.data(),
                                                         "active_occupants_count": len(room.active)})
            if not room.active:
                self._destroy(room)

    def end_meeting(self, conference: str) -> bool:
        room_name = conference.split("@", 1)[0]
        with self._lock:
            room = self.rooms.get(room_name)
            self.ended.append(room_name)
            if room is None:
                return False
            for occ in list(room.active.values()):
                del room.active[occ.occupant_jid]
                occ.left_at = self._now()
                self._queue("/events/occupant/left", room, {"event_name": "muc-occupant-left", "occupant": occ.data(),
                                                             "active_occupants_count": len(room.active)})
            self._destroy(room)
            return True

    # -- event_sync ----------------------------------------------------------------
    def flush(self, post: Callable[[str, bytes, dict[str, str]], int]) -> list[int]:
        """Send the queued events in order, as event_sync does (JSON, with its headers)."""
        with self._lock:
            batch, self.outbox = self.outbox, []
        codes = []
        for path, payload in batch:
            headers = {"Content-Type": "application/json", "User-Agent": "Prosody (0.12.4; posix)"}
            body = json.dumps(payload).encode()
            if self.webhook_token and self.signing_proxy:
                digest = hmac.new(self.webhook_token.encode(), body, hashlib.sha256).hexdigest()
                headers["X-Commtest-Signature"] = f"sha256={digest}"
            elif self.webhook_token:
                headers["Authorization"] = f"Bearer {self.webhook_token}"
            code = post(path, body, headers)
            self.sent.append((path, payload, code))
            codes.append(code)
        return codes

    # -- HTTP ----------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path.endswith("/end-meeting"):
            auth = request.headers.get("authorization", "")
            if not auth.startswith("Bearer "):
                return httpx.Response(401)
            try:
                self.verify(auth[7:])
            except JoinRefused:
                return httpx.Response(401)
            conference = request.url.params.get("conference")
            if not conference:
                return httpx.Response(400)
            return httpx.Response(200 if self.end_meeting(conference) else 404)
        if request.method == "GET" and path.strip("/"):
            try:
                occ = self.join(str(request.url))
            except JoinRefused as exc:
                return httpx.Response(403, text=f"not admitted: {exc}")
            return httpx.Response(200, text=f"<!DOCTYPE html><title>{occ.room}</title><p>In the room {occ.room}.</p>",
                                  headers={"Content-Type": "text/html; charset=utf-8"})
        return httpx.Response(404)

    # -- inside ----------------------------------------------------------------------
    def _now(self) -> int:
        return int(self.clock.now().timestamp())

    def _enter(self, room_name: str, identity: str | None, name: str | None) -> Occupant:
        with self._lock:
            room = self.rooms.get(room_name)
            if room is None:
                room = self.rooms[room_name] = _Room(room_name, self._now())
                self._queue("/events/room/created", room, {"event_name": "muc-room-created", "created_at": room.created_at})
            occ = Occupant(room_name, f"{uuid.uuid4()}@{self.subject}/{uuid.uuid4().hex[:8]}", self._now(), name, identity)
            room.active[occ.occupant_jid] = occ
            room.everyone.append(occ)
            self._queue("/events/occupant/joined", room, {"event_name": "muc-occupant-joined", "occupant": occ.data(),
                                                           "active_occupants_count": len(room.active)})
            return occ

    def _destroy(self, room: _Room) -> None:
        self._queue("/events/room/destroyed", room, {"event_name": "muc-room-destroyed", "created_at": room.created_at,
                                                      "destroyed_at": self._now(),
                                                      "all_occupants": [o.data() for o in room.everyone]})
        self.rooms.pop(room.name, None)

    def _queue(self, path: str, room: _Room, payload: dict[str, Any]) -> None:
        payload = {**payload, "room_name": room.name, "room_jid": f"{room.name}@{self.muc_domain}", "is_breakout": False}
        self.outbox.append((path, payload))
