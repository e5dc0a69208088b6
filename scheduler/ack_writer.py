"""Group commit for acknowledgements: every answer that arrives while one durable commit is
being written goes into the next one.

An acknowledgement must survive a power cut once its request got a 2xx, so its transaction
is committed with ``synchronous=FULL`` (SQLite) or a WAL flush (PostgreSQL): a few
milliseconds of waiting for the disk. One commit per answer made sixteen officers answering at
once wait in line for sixteen flushes. Here one thread owns the writing: it takes every answer
waiting, records them all in one short transaction (``scheduler.ack_group``: a statement of each
kind for the whole group, each answer decided as ``acknowledge_token`` would, conditional writes
included), commits once, and only then answers each request. When a group fails, each of its
answers is run again in a transaction of its own, so one never takes the others down.
"""
from __future__ import annotations

import asyncio
import logging
import queue
import threading
from concurrent.futures import Future
from typing import Union

from sqlalchemy.engine import Connection, Engine

from commtest.clock import Clock
from commtest.db import run_write_connection
from commtest.settings import Settings
from scheduler.ack_group import Answer, record_answers
from scheduler.acks import AckOutcome

log = logging.getLogger(__name__)

# Answers per commit at most: bounds the transaction, so the write lock is never held long.
MAX_GROUP = 64


# Who waits for an answer's outcome: a thread (a concurrent Future), or a coroutine on an event
# loop (the loop and an asyncio future, settled on that loop).
Reply = Union["Future[AckOutcome]", "tuple[asyncio.AbstractEventLoop, asyncio.Future[AckOutcome]]"]


class AckWriter:
    """One writer thread per process, started on the first answer."""

    def __init__(self, engine: Engine, clock: Clock, settings: Settings) -> None:
        self.engine, self.clock, self.settings = engine, clock, settings
        self._queue: queue.SimpleQueue[tuple[Answer, Reply] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.groups = 0  # commits written (for tests and metrics)

    def submit(self, answer: Answer) -> Future[AckOutcome]:
        """Record ``answer``; its outcome once committed, for a thread to wait on."""
        future: Future[AckOutcome] = Future()
        self._ensure_started()
        self._queue.put((answer, future))
        return future

    def submit_async(self, answer: Answer) -> asyncio.Future[AckOutcome]:
        """``submit`` for a coroutine: every outcome of a group that waits on one event loop is
        handed to it in one wake-up (one per answer, each a write to the loop's pipe and a
        callback, cost the web process more than recording the answer)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AckOutcome] = loop.create_future()
        self._ensure_started()
        self._queue.put((answer, (loop, future)))
        return future

    def warm(self) -> None:
        """Nothing to prepare: the thread starts in a moment, with the first answer."""

    def close(self) -> None:
        """Write what is waiting, then stop the thread (a later answer starts it again)."""
        with self._start:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join(10)
                self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is None:
            with self._start:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="ack-writer", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)  # stop after this group
                    break
                group.append(item)
            self._write(group)

    def _write(self, group: list[tuple[Answer, Reply]]) -> None:
        outcomes = self.record_group([answer for answer, _ in group])
        # Only now, after the durable commit: a 2xx means recorded.
        _deliver([(reply, outcome) for (_, reply), outcome in zip(group, outcomes, strict=True)])

    def record_group(self, answers: list[Answer]) -> list[AckOutcome | BaseException]:
        """Record ``answers`` in one durable transaction; their outcomes (or the error of each
        that could not be recorded) once it is committed."""
        try:
            outcomes: list[AckOutcome | BaseException] = list(
                run_write_connection(self.engine, lambda c: self._record(c, answers), durable=True))
        except Exception:  # one answer that cannot be recorded must not fail the others: alone, each
            log.warning("a group of %d acknowledgements failed; recording each on its own", len(answers),
                        exc_info=True)
            outcomes = []
            for answer in answers:
                try:
                    outcomes.append(run_write_connection(self.engine, lambda c, a=answer: self._record(c, [a])[0],
                                                        durable=True))
                except Exception as exc:  # noqa: BLE001 - handed to the request that made it
                    outcomes.append(exc)
        else:
            self.groups += 1
        return outcomes

    def _record(self, conn: Connection, answers: list[Answer]) -> list[AckOutcome]:
        return record_answers(conn, self.clock, self.settings, answers)


def _deliver(done: list[tuple[Reply, AckOutcome | BaseException]]) -> None:
    """Each outcome to whoever waits for it: threads at once, each event loop in one callback."""
    loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[AckOutcome], AckOutcome | BaseException]]] = {}
    for reply, outcome in done:
        if isinstance(reply, Future):
            if isinstance(outcome, BaseException):
                reply.set_exception(outcome)
            else:
                reply.set_result(outcome)
        else:
            loops.setdefault(reply[0], []).append((reply[1], outcome))
    for loop, settled in loops.items():
        try:
            loop.call_soon_threadsafe(settle, settled)
        except RuntimeError:  # that loop has closed: nobody waits for these any more
            log.debug("ack writer: %d outcomes for a closed event loop", len(settled))


def settle(settled: list[tuple[asyncio.Future[AckOutcome], AckOutcome | BaseException]]) -> None:
    """Each outcome to its waiting coroutine (on that coroutine's event loop)."""
    for future, outcome in settled:
        if future.cancelled():  # the request went away; its answer is recorded all the same
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
