"""The figures the fault suite reports on its one ``RESULT`` line (tests/faults/conftest.py).

Each test adds what it measured; the line is printed at the end of the session, whether
the tests passed or not, so that CI's log always says what was tried and what was seen.
"""
from __future__ import annotations

import os
import random
import threading
from typing import Any

# One seed for the whole suite: printed on the RESULT line, set COMMTEST_FAULTS_SEED to replay.
SEED = int(os.environ.get("COMMTEST_FAULTS_SEED", "2027"))

_lock = threading.Lock()
_sums: dict[str, float] = {}
_maxima: dict[str, float] = {}
_notes: dict[str, str] = {}
# The order of the RESULT line; other figures follow in the order they were added.
ORDER = ("kills", "attempts", "duplicates", "lost_acks", "acks_2xx", "acks_on_deadline", "acks_late", "unknown",
         "unknown_received", "failover_s_max", "failover_s_median")


def rng(name: str) -> random.Random:
    """A random generator of its own per test, from the suite's seed: one test's draws do not
    shift another's when the suite is run in part."""
    return random.Random(f"{SEED}:{name}")


def add(**figures: float) -> None:
    """Add counts (summed over tests)."""
    with _lock:
        for key, value in figures.items():
            _sums[key] = _sums.get(key, 0) + value


def maximum(**figures: float) -> None:
    """Record maxima (the largest over tests)."""
    with _lock:
        for key, value in figures.items():
            _maxima[key] = max(_maxima.get(key, value), value)


def note(**values: Any) -> None:
    """Record a value as is (the last one wins), e.g. a median of one test."""
    with _lock:
        for key, value in values.items():
            _notes[key] = str(value)


def recorded() -> bool:
    with _lock:
        return bool(_sums or _maxima or _notes)


def result_line(failed: int) -> str:
    with _lock:
        values: dict[str, str] = {}
        for key, value in _sums.items():
            values[key] = _fmt(value)
        for key, value in _maxima.items():
            values[key] = _fmt(value)
        values.update(_notes)
    ordered = [k for k in ORDER if k in values] + [k for k in values if k not in ORDER]
    return "RESULT " + " ".join(f"{k}={values[k]}" for k in ordered) + f" failed={failed} seed={SEED}"


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
