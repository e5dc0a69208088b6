"""Pacing: calls (and SMS) started no faster than a rate per provider account.

Twilio queues calls beyond an account's calls-per-second limit (1/s by default), so an
unpaced burst makes the last officer's phone ring many seconds after its ``sent`` time.
Pacing here keeps the two close; the response time of a call runs from ``ringing`` anyway.

One ``Pacer`` per (account, kind) and clock, shared by every channel instance of the
process that uses that account, so the primary and a channel test do not add up. Only
the scheduler leader dispatches, so one process paces all of an account's sends.
"""
from __future__ import annotations

import threading
import weakref
from datetime import datetime, timedelta

from commtest.clock import Clock

__all__ = ["Pacer", "pacer_for"]


class Pacer:
    """Releases callers at least ``1/rate`` seconds apart, to any number of threads, as the
    injected clock measures it (a frozen clock in tests: the spacing is exact).

    A caller waits for its turn holding the pacer's lock, and the next turn is reckoned from
    the moment the previous caller was really released, not from the slot it was given: a
    sleep that overran (a loaded machine, the GIL) then delays the callers after it instead of
    letting the next one catch up, which sent two calls 64 ms apart at 10/s before."""

    def __init__(self, rate_per_second: float, clock: Clock) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.interval = timedelta(seconds=1.0 / rate_per_second)
        self.clock = clock
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def wait(self) -> datetime:
        """Block until this caller may go; returns the moment it was released."""
        with self._lock:
            now = self.clock.now()
            if self._last is not None:
                # A wall clock stepped back (NTP) must not hold the sends: one interval at most.
                due = min(self._last + self.interval, now + self.interval)
                while now < due:
                    self.clock.sleep((due - now).total_seconds())
                    later = self.clock.now()
                    if later <= now:
                        break  # a clock that does not move while we sleep: do not spin
                    now = later
            self._last = now
            return now


_pacers: weakref.WeakKeyDictionary[object, dict[tuple[str, str], Pacer]] = weakref.WeakKeyDictionary()
_pacers_lock = threading.Lock()


def pacer_for(account_sid: str, kind: str, rate_per_second: float, clock: Clock) -> Pacer:
    """The process's pacer of (account, kind) on ``clock``: the slowest rate asked for wins."""
    with _pacers_lock:
        by_key = _pacers.setdefault(clock, {})
        pacer = by_key.get((account_sid, kind))
        if pacer is None or pacer.interval < timedelta(seconds=1.0 / rate_per_second):
            pacer = by_key[(account_sid, kind)] = Pacer(rate_per_second, clock)
        return pacer
