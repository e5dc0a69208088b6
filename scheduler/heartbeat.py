"""The leader's heartbeat: one row (``leader_heartbeat``) that the leading daemon rewrites
every ``settings.heartbeat_seconds``: who leads, how many ticks it ran, and how late they ran.

Tick lateness is how much later than ``tick_seconds`` after the previous one a tick started
(a long tick, a busy machine or a paused process shows up here). ``/metrics`` reads the row:
a heartbeat older than three periods means no daemon is leading. Chosen over asking the leader
lock because it needs no extra connection per scrape and tells lateness too.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session

from commtest.clock import Clock
from commtest.db import run_write
from commtest.models import LeaderHeartbeat

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, engine: Engine, clock: Clock, *, holder: str, tick_seconds: float, every_seconds: float) -> None:
        self.engine, self.clock, self.holder = engine, clock, holder[:200]
        self.tick_seconds, self.every_seconds = tick_seconds, every_seconds
        self._last_tick: datetime | None = None
        self._last_beat: datetime | None = None
        self._ticks = 0
        self._late_ms = 0
        self._late_max_ms = 0
        self._decision_ms = 0
        self._decision_max_ms = 0
        self._decision_retries = 0

    def tick(self, decisions: tuple[int, int, int] = (0, 0, 0)) -> None:
        """Call at the start of each tick, with the deadline decisions' lateness (latest, worst
        since the previous tick, retries; ms); writes the row when a period has passed. Never raises."""
        now = self.clock.now()
        self._decision_ms = decisions[0]
        self._decision_max_ms = max(self._decision_max_ms, decisions[1])
        self._decision_retries = decisions[2]
        if self._last_tick is not None:
            late = (now - self._last_tick).total_seconds() - self.tick_seconds
            self._late_ms = max(0, int(late * 1000))
            self._late_max_ms = max(self._late_max_ms, self._late_ms)
        self._last_tick = now
        self._ticks += 1
        if self._last_beat is None or (now - self._last_beat).total_seconds() >= self.every_seconds:
            self.beat(now)

    def beat(self, now: datetime | None = None) -> None:
        now = now or self.clock.now()
        values = dict(holder=self.holder, beat_at=now, ticks=self._ticks, tick_lateness_ms=self._late_ms,
                      tick_lateness_max_ms=self._late_max_ms, decision_lateness_ms=self._decision_ms,
                      decision_lateness_max_ms=self._decision_max_ms, decision_retries=self._decision_retries)

        def work(s: Session) -> None:
            row = s.get(LeaderHeartbeat, 1)
            if row is None:
                row = LeaderHeartbeat(id=1, **values)
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            s.add(row)

        try:
            run_write(self.engine, work)
            self._last_beat = now
            self._late_max_ms = 0
            self._decision_max_ms = 0
        except Exception:  # the heartbeat is for monitoring: it must never stop a tick
            log.warning("could not record the leader heartbeat", exc_info=True)
