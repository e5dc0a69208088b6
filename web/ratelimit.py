"""Per-source-address sliding window (in process) for the ack pages.

A token has 256 bits, so guessing is hopeless; the limit keeps a scanner or a
misbehaving client from hammering the database. Several replicas each keep their own
window: the effective limit is per replica.
"""
from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timedelta

from commtest.clock import Clock

WINDOW = timedelta(minutes=1)
_MAX_KEYS = 10_000  # forget idle addresses rather than grow without bound


class SlidingWindowLimiter:
    def __init__(self, limit: int, clock: Clock, window: timedelta = WINDOW) -> None:
        self.limit = limit
        self.clock = clock
        self.window = window
        self._hits: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = self.clock.now()
        cutoff = now - self.window
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= cutoff:
                hits.popleft()
            if len(hits) >= self.limit:
                return False
            hits.append(now)
            if len(self._hits) > _MAX_KEYS:
                self._prune(cutoff)
            return True

    def _prune(self, cutoff: datetime) -> None:
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= cutoff]:
            del self._hits[key]
