"""The only module that reads the system time (CONVENTIONS.md rule 5).

Everything else receives a ``Clock`` and asks it. Times are aware UTC.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Protocol

UTC = timezone.utc


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...

    def wait(self, event: threading.Event, seconds: float, *, max_real: float) -> None:
        """Block until ``event`` is set or ``seconds`` of this clock's time have passed, and
        never longer than ``max_real`` real seconds (so the caller notices a stop or a clock
        that was set): the leader's timers sleep until the next instant with it."""
        ...


class SystemClock:
    """Wall-clock time in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def wait(self, event: threading.Event, seconds: float, *, max_real: float) -> None:
        event.wait(max(0.0, min(seconds, max_real)))


class FrozenClock:
    """A clock that only moves when told to: for tests and for simulations."""

    def __init__(self, at: datetime) -> None:
        self._now = ensure_utc(at)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, at: datetime) -> None:
        with self._lock:
            self._now = ensure_utc(at)

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        with self._lock:
            self._now = self._now + timedelta(seconds=seconds, **kwargs)
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def wait(self, event: threading.Event, seconds: float, *, max_real: float) -> None:
        # Frozen time passes only when a test moves it: look again soon.
        event.wait(max(0.0, min(max_real, 0.02)) if seconds > 0 else 0)


class ScaledClock:
    """Time that runs ``factor`` times faster than the wall clock, from ``start``.

    Only for the demo and simulations: a 40-minute playbook plays out in a minute, and
    every component (engine, web app, simulated officers) sees the same simulated time.
    """

    def __init__(self, factor: float, start: datetime | None = None) -> None:
        self.factor = factor
        self._start = ensure_utc(start) if start else datetime.now(UTC)
        self._mono = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=(time.monotonic() - self._mono) * self.factor)

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds) / self.factor)

    def wait(self, event: threading.Event, seconds: float, *, max_real: float) -> None:
        event.wait(max(0.0, min(seconds / self.factor, max_real)))


def monotonic() -> float:
    """Seconds from an arbitrary origin that never jumps: a stopwatch for time budgets
    (template rendering), never a time of day."""
    return time.monotonic()


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as aware UTC. Naive datetimes are taken to be UTC already
    (that is how SQLite hands them back)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant; naive means UTC."""
    return ensure_utc(datetime.fromisoformat(text))
