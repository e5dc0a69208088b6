"""``VideoChannel``: the Channel the run engine sees, for any ``VideoBridge``.

``send`` opens the run's room (once; the bridge makes it idempotent), derives the contact
point's identity (the ping's ``provider_ref``) and sends the invitation. Presence becomes
``acked`` reports with method ``video-join``; for a polling bridge ``poll_reports`` asks at
``interval`` and once more just before each deadline, so a join made in time is never
judged after the deadline. When the bridge cannot be asked at a deadline, the attempt is
reported ``failed`` (provider failure: not the centre's fault) instead of left to look
like silence. Rooms are closed by ``close_rooms`` once their run has ended
(``scheduler.video_rooms`` calls it every tick).
"""
from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from channels.base import ChannelReport, OutgoingPing, SendResult
from channels.video.bridge import Room, VideoBridge
from channels.video.invite import InviteCourier, VideoInvite
from commtest.clock import Clock
from commtest.errors import ChannelError

log = logging.getLogger(__name__)

METHOD = "video-join"
_SEEN_MAX = 10_000  # event ids remembered for de-duplication
_CLOSE_ATTEMPTS = 5


@dataclass
class _Waiting:
    identity: str
    deadline_at: datetime
    final_polled: bool = False  # asked once more just before the deadline
    answered: bool = False


@dataclass
class _RoomWatch:
    room: Room
    opened: bool = False
    last_poll: datetime | None = None
    close_failures: int = 0
    waiting: dict[int, _Waiting] = field(default_factory=dict)


class VideoChannel:
    kind = "video"

    def __init__(self, bridge: VideoBridge, courier: InviteCourier, clock: Clock, *, poll_every: timedelta,
                 final_poll_margin: timedelta, join_grace: timedelta, room_minutes: int,
                 simulated: bool = False) -> None:
        self.bridge = bridge
        self.provider = bridge.provider
        self.courier = courier
        self.clock = clock
        self.poll_every = poll_every
        self.final_poll_margin = final_poll_margin
        self.join_grace = join_grace
        self.room_minutes = room_minutes
        self.simulated = simulated  # True when the bridge is a local fake and its guests are scripted
        self._rooms: dict[int, _RoomWatch] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._adopted = False
        self._lock = threading.Lock()

    # -- Channel -----------------------------------------------------------------
    def send(self, ping: OutgoingPing) -> SendResult:
        room = self.bridge.room_for(ping.run_id)
        with self._lock:
            watch = self._rooms.setdefault(ping.run_id, _RoomWatch(room))
            opened = watch.opened
        if not opened:
            # Before the invitation: the room must be there when the first guest clicks.
            self.bridge.open_room(room, until=self.clock.now() + timedelta(minutes=self.room_minutes))
            with self._lock:
                watch.opened = True
        guest = self.bridge.guest(room, ping.ping_id, ping.organisation_code, ping.contact_name)
        self.courier.deliver(VideoInvite(ping, room.url))
        with self._lock:
            watch.waiting[ping.ping_id] = _Waiting(guest.identity, ping.deadline_at)
        log.info("run=%s ping=%s video invitation sent; room %s", ping.run_id, ping.ping_id, room.name)
        return SendResult(provider_ref=guest.identity)

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        if not self.bridge.polls:
            return []  # a webhook bridge: the web app's hook reports joins
        self._adopt_rooms()
        reports: list[ChannelReport] = []
        with self._lock:
            watches = list(self._rooms.values())
        for watch in watches:
            if self._poll_due(watch, now):
                reports.extend(self._poll(watch, now))
            self._forget_old(watch, now)
        return reports

    def close(self) -> None:
        self.bridge.close()

    # -- rooms of runs that ended ------------------------------------------------
    def open_room_runs(self) -> set[int]:
        with self._lock:
            return set(self._rooms)

    def close_rooms(self, run_ids: set[int]) -> list[int]:
        """End the rooms of these runs on the bridge; returns the runs whose room was closed.
        A room the bridge cannot close now is tried again at the next call (a few times)."""
        closed: list[int] = []
        for run_id in sorted(run_ids):
            with self._lock:
                watch = self._rooms.get(run_id)
            if watch is None:
                continue
            try:
                self.bridge.close_room(watch.room)
            except ChannelError as exc:
                watch.close_failures += 1
                if watch.close_failures < _CLOSE_ATTEMPTS:
                    log.warning("run=%s video room %s not closed yet (%s); trying again", run_id, watch.room.name,
                                exc.message)
                    continue
                log.error("run=%s video room %s could not be closed (%s); the bridge ends it after %s minutes",
                          run_id, watch.room.name, exc.message, self.room_minutes)
            with self._lock:
                self._rooms.pop(run_id, None)
            closed.append(run_id)
            log.info("run=%s video room %s closed", run_id, watch.room.name)
        return closed

    # -- polling -----------------------------------------------------------------
    def _poll_due(self, watch: _RoomWatch, now: datetime) -> bool:
        if watch.last_poll is None or now - watch.last_poll >= self.poll_every:
            return True
        return any(not w.final_polled and not w.answered and w.deadline_at - self.final_poll_margin <= now
                   for w in watch.waiting.values())

    def _poll(self, watch: _RoomWatch, now: datetime) -> list[ChannelReport]:
        try:
            seen = self.bridge.presence(watch.room)
        except ChannelError as exc:
            # Not silence: we could not look. An attempt whose deadline passed meanwhile is a
            # provider failure (not the centre's fault); earlier ones are asked again next tick.
            out = []
            for ping_id, w in watch.waiting.items():
                if not w.answered and not w.final_polled and w.deadline_at <= now:
                    w.final_polled = True
                    out.append(ChannelReport("failed", now, ping_id=ping_id, provider_ref=w.identity,
                                             detail=f"the video bridge could not be asked who joined: {exc.message}"))
            log.warning("video room %s: presence unknown (%s)", watch.room.name, exc.message)
            return out
        watch.last_poll = now
        for w in watch.waiting.values():
            if w.deadline_at - self.final_poll_margin <= now:
                w.final_polled = True
        out = []
        by_identity = {w.identity: (pid, w) for pid, w in watch.waiting.items()}
        for p in seen:
            if not self._first_time(p.event_id):
                continue
            known = by_identity.get(p.identity)
            if known is not None:
                known[1].answered = True
            # Recorded at the poll that saw them: never earlier than we know.
            out.append(ChannelReport("acked", p.at, ping_id=known[0] if known else None, provider_ref=p.identity,
                                     method=METHOD, by=p.by or None, extra={"event_id": p.event_id}))
        return out

    def _first_time(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._seen:
                return False
            self._seen[event_id] = None
            while len(self._seen) > _SEEN_MAX:
                self._seen.popitem(last=False)
            return True

    def _forget_old(self, watch: _RoomWatch, now: datetime) -> None:
        with self._lock:
            for ping_id in [pid for pid, w in watch.waiting.items() if w.deadline_at + self.join_grace < now]:
                del watch.waiting[ping_id]

    def _adopt_rooms(self) -> None:
        """After a restart: the rooms the bridge still has for us are watched (and closed) again."""
        if self._adopted:
            return
        self._adopted = True
        try:
            rooms = self.bridge.existing_rooms()
        except ChannelError as exc:
            log.warning("could not list the video bridge's open rooms (%s)", exc.message)
            return
        with self._lock:
            for room in rooms:
                if room.run_id not in self._rooms:
                    self._rooms[room.run_id] = _RoomWatch(room, opened=True)
