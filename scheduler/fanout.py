"""Calling one function over a batch with up to N calls at a time, the caller making them first.

The dispatcher hands each attempt of a batch to its provider. A provider call that waits (an
SMTP or HTTPS round trip) must not hold up the others, hence threads. But a thread pool wakes
a thread for every call and hands the interpreter lock back and forth for each: about 80 µs of
CPU per call on this machine (``bench/bench_dispatch.py``), more than all the rest of an
attempt's bookkeeping when the provider answers at once (the sandbox, a local fake).

So the caller makes the calls itself, one after the other, while a watchdog thread looks every
``patience`` seconds whether the call in progress is still the one it saw last time. A call
that has taken that long is waiting on something: the watchdog then wakes the helpers, which
take the batch's remaining calls, up to ``workers`` at a time, as a pool would. Calls that
return at once never wake a helper; calls that wait lose at most ``2 × patience`` before they
fan out.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

PATIENCE_S = 0.002


class _Batch(Generic[T, R]):
    def __init__(self, fn: Callable[[T], R], items: Sequence[T], number: int) -> None:
        self.fn, self.items, self.number = fn, items, number
        self.results: list[Any] = [None] * len(items)
        self.error: BaseException | None = None
        self.started = 0  # calls taken so far (the caller's progress, as the watchdog sees it)
        self._open = len(items)
        self._lock = threading.Lock()
        self.finished = threading.Event()
        if not items:
            self.finished.set()

    def take(self) -> int | None:
        with self._lock:
            if self.started >= len(self.items):
                return None
            self.started += 1
            return self.started - 1

    def run(self, i: int) -> None:
        try:
            self.results[i] = self.fn(self.items[i])
        except BaseException as exc:  # noqa: BLE001 - the caller raises it once the batch is over
            self.error = self.error or exc
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self.finished.set()

    def drain(self) -> None:
        while (i := self.take()) is not None:
            self.run(i)


class FanOut:
    """``map(fn, items)`` is ``[fn(x) for x in items]`` with at most ``workers`` calls at a time."""

    def __init__(self, workers: int, name: str, patience: float = PATIENCE_S) -> None:
        self._helpers_max = max(0, workers - 1)  # the caller makes calls too
        self._name = name
        self._patience = patience
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the helpers wait on it
        self._looks = threading.Condition(lock)  # the watchdog waits on it
        self._batch: _Batch[Any, Any] | None = None
        self._wanted = 0  # helpers asked to wake and not awake yet
        self._idle = 0
        self._helpers: list[threading.Thread] = []
        self._closed = False
        self._watchdog: threading.Thread | None = None
        self._one_batch = threading.Lock()
        self._batches = 0  # numbers the batches, for the watchdog

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """The results in the order of ``items``; the first exception raised by a call is raised
        once every call has returned."""
        with self._one_batch:  # callers in several threads take turns
            return self._map(fn, items)

    def _map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        self._batches += 1
        batch: _Batch[T, R] = _Batch(fn, items, self._batches)
        with self._cond:
            if self._closed:
                raise RuntimeError(f"{self._name}: closed")
            self._batch = batch
            if len(items) > 1 and self._helpers_max:
                self._start_watchdog()
                self._looks.notify()  # the watchdog starts watching
        try:
            batch.drain()
            batch.finished.wait()  # the calls the helpers took
        finally:
            with self._cond:
                self._batch = None
        if batch.error is not None:
            raise batch.error
        return batch.results

    def close(self) -> None:
        """Stop the watchdog and the helpers (called once no batch is in progress)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._looks.notify_all()
        for t in [*self._helpers, *([self._watchdog] if self._watchdog else [])]:
            t.join()

    # ------------------------------------------------------------------ threads
    def _start_watchdog(self) -> None:
        if self._watchdog is None:
            self._watchdog = threading.Thread(target=self._watch, name=f"{self._name}-watchdog", daemon=True)
            self._watchdog.start()

    def _watch(self) -> None:
        seen: tuple[int, int] | None = None  # (batch, calls started) at the last look
        while True:
            with self._cond:
                while self._batch is None and not self._closed:
                    self._looks.wait()
                    seen = None
                if self._closed:
                    return
                batch = self._batch
                assert batch is not None  # (the loop above waits for one)
                if batch.started >= len(batch.items):
                    # Every call is taken: nothing to hand over until the next batch (which notifies).
                    self._looks.wait()
                    seen = None
                    continue
                now = (batch.number, batch.started)
                if now == seen:
                    # One call has lasted a whole look: it waits. The rest go to the helpers.
                    self._wake(len(batch.items) - batch.started)
                seen = now
                self._looks.wait(self._patience)

    def _wake(self, n: int) -> None:
        """Wake ``n`` helpers (starting them as needed), never more than ``workers - 1`` busy."""
        for _ in range(n):
            if self._wanted < self._idle:
                self._wanted += 1
                self._cond.notify()
            elif len(self._helpers) < self._helpers_max:
                t = threading.Thread(target=self._help, name=f"{self._name}-{len(self._helpers)}", daemon=True)
                self._helpers.append(t)
                self._wanted += 1
                self._idle += 1
                t.start()
            else:
                return

    def _help(self) -> None:
        while True:
            with self._cond:
                while not self._wanted and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                self._wanted -= 1
                self._idle -= 1
                batch = self._batch
            try:
                if batch is not None:
                    batch.drain()
            finally:
                with self._cond:
                    self._idle += 1
