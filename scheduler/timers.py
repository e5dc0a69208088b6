"""The leader's timers: wake exactly when the next attempt is due or the next deadline passes.

Polling every tick made a deadline wait for the next tick and for everything the tick did
first (a deadline judged up to 18 s late under a big run). Instead the leader keeps the
instants at which it has something to do in a heap, in memory, and a thread per kind of work
sleeps until the earliest:

* the **dispatch** timer wakes when an attempt is due (a run starts, a retry's time comes);
* the **deadline** timer wakes when an attempt's acknowledgement deadline passes.

The heaps are filled from the database when the leader starts and refreshed by every tick
(``refresh``: the earliest instants, one indexed query each), so attempts planned by another
process (the console's "run now", a CLI) are found within a tick; the engine tells the timers
directly about what it plans and sends itself (``RunEngine.on_planned`` / ``on_sent``). An
instant that turns out to have nothing to do (answered meanwhile) costs one empty query.
"""
from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.clock import Clock
from commtest.db import read_connection
from commtest.errors import LeadershipLost
from commtest.models import Ping, PingState, RunStatus, TestRun
from scheduler.records import AWAITING_ACK

log = logging.getLogger(__name__)

PT = Ping.__table__  # type: ignore[attr-defined]
RT = TestRun.__table__  # type: ignore[attr-defined]
# Instants loaded at start: enough for the biggest run; beyond them each tick's refresh takes over.
LOAD_LIMIT = 100_000


class Timer:
    """A heap of instants and a thread that runs ``action(now)`` as soon as the earliest is due.

    ``idle_wait`` (real seconds) bounds every sleep, so the thread notices a stop, and a frozen
    or jumping clock, quickly. An action that fails is logged and tried again at the next
    instant or idle wake; ``LeadershipLost`` ends the timer and calls ``on_lost``.
    """

    def __init__(self, name: str, clock: Clock, action: Callable[[datetime], object], *, idle_wait: float,
                 on_lost: Callable[[], None]) -> None:
        self.name = name
        self.clock = clock
        self.action = action
        self.idle_wait = idle_wait
        self.on_lost = on_lost
        self._heap: list[datetime] = []
        self._known: set[datetime] = set()  # each instant once in the heap, however often it is told
        self._lock = threading.Lock()
        self._changed = threading.Event()
        self._thread: threading.Thread | None = None
        self.wakes = 0

    def add(self, instants: Iterable[datetime]) -> None:
        """Wake at each of ``instants`` (earlier ones at once)."""
        earliest = None
        with self._lock:
            head = self._heap[0] if self._heap else None
            for at in instants:
                if at in self._known:
                    continue
                self._known.add(at)
                heapq.heappush(self._heap, at)
                earliest = at if earliest is None or at < earliest else earliest
        if earliest is not None and (head is None or earliest < head):
            self._changed.set()

    def poke(self) -> None:
        """Look again now (something may be due that nobody told us about)."""
        self._changed.set()

    def peek(self) -> datetime | None:
        """The earliest instant waiting, if any."""
        with self._lock:
            return self._heap[0] if self._heap else None

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

    def start(self, stop: threading.Event) -> None:
        self._thread = threading.Thread(target=self._run, args=(stop,), name=f"timer-{self.name}", daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            now = self.clock.now()
            due = False
            with self._lock:
                while self._heap and self._heap[0] <= now:
                    self._known.discard(heapq.heappop(self._heap))
                    due = True
                head = self._heap[0] if self._heap else None
                self._changed.clear()
            if due:
                self.wakes += 1
                try:
                    self.action(now)
                except LeadershipLost:
                    self.on_lost()
                    return
                except Exception:  # a failing decision must not end the timer: the next wake retries
                    log.exception("%s timer: the work due at %s failed; trying again", self.name, now)
                    self.add([now])
                    stop.wait(min(self.idle_wait, 0.5))
                continue
            wait = self.idle_wait if head is None else (head - now).total_seconds()
            self.clock.wait(self._changed, max(wait, 0.0), max_real=self.idle_wait)


def due_instants(engine: Engine, *, limit: int) -> list[datetime]:
    """When the attempts of running runs not sent yet are due (the earliest ``limit``)."""
    with read_connection(engine) as conn:
        return list(conn.execute(
            sa.select(PT.c.due_at).join(RT, RT.c.id == PT.c.run_id)
            .where(PT.c.state == PingState.pending.value, RT.c.status == RunStatus.running.value)
            .order_by(PT.c.due_at).limit(limit)).scalars())


def deadline_instants(engine: Engine, *, limit: int) -> list[datetime]:
    """The deadlines of the attempts waiting for their answer (the earliest ``limit``)."""
    with read_connection(engine) as conn:
        return list(conn.execute(
            sa.select(PT.c.deadline_at).where(PT.c.state.in_(AWAITING_ACK), PT.c.deadline_at.is_not(None))
            .order_by(PT.c.deadline_at).limit(limit)).scalars())


def _distinct(instants: list[datetime]) -> list[datetime]:
    return sorted(set(instants))


class LeaderTimers:
    """The dispatch and deadline timers of one leadership."""

    def __init__(self, engine: Engine, clock: Clock, *, dispatch: Callable[[datetime], object],
                 deadlines: Callable[[datetime], object], idle_wait: float, on_lost: Callable[[], None]) -> None:
        self.engine = engine
        self.dispatch = Timer("dispatch", clock, dispatch, idle_wait=idle_wait, on_lost=on_lost)
        self.deadlines = Timer("deadline", clock, deadlines, idle_wait=idle_wait, on_lost=on_lost)

    def start(self, stop: threading.Event) -> None:
        self.dispatch.add(_distinct(due_instants(self.engine, limit=LOAD_LIMIT)))
        self.deadlines.add(_distinct(deadline_instants(self.engine, limit=LOAD_LIMIT)))
        self.dispatch.start(stop)
        self.deadlines.start(stop)

    def refresh(self) -> None:
        """The earliest instants as the database has them now (another process may have planned
        or sent attempts); cheap: two index range scans."""
        self.dispatch.add(due_instants(self.engine, limit=1)[:1])
        self.deadlines.add(deadline_instants(self.engine, limit=1)[:1])

    def join(self, timeout: float | None = None) -> None:
        self.dispatch.join(timeout)
        self.deadlines.join(timeout)
