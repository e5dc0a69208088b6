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

import logging
import queue
import threading
from concurrent.futures import Future

from sqlalchemy.engine import Engine
from sqlmodel import Session

from commtest.clock import Clock
from commtest.db import run_write
from commtest.settings import Settings
from scheduler.ack_group import Answer, record_answers
from scheduler.acks import AckOutcome

log = logging.getLogger(__name__)

# Answers per commit at most: bounds the transaction, so the write lock is never held long.
MAX_GROUP = 64


class AckWriter:
    """One writer thread per process, started on the first answer."""

    def __init__(self, engine: Engine, clock: Clock, settings: Settings) -> None:
        self.engine, self.clock, self.settings = engine, clock, settings
        self._queue: queue.SimpleQueue[tuple[Answer, Future[AckOutcome]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self.groups = 0  # commits written (for tests and metrics)

    def submit(self, answer: Answer) -> Future[AckOutcome]:
        future: Future[AckOutcome] = Future()
        self._ensure_started()
        self._queue.put((answer, future))
        return future

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

    def _write(self, group: list[tuple[Answer, Future[AckOutcome]]]) -> None:
        try:
            answers = [a for a, _ in group]
            outcomes = run_write(self.engine, lambda s: self._record(s, answers), durable=True)
        except Exception:  # one answer that cannot be recorded must not fail the others: alone, each
            log.warning("a group of %d acknowledgements failed; recording each on its own", len(group), exc_info=True)
            for answer, future in group:
                try:
                    future.set_result(run_write(self.engine, lambda s, a=answer: self._record(s, [a])[0], durable=True))
                except Exception as exc:  # noqa: BLE001 - handed to the request that made it
                    future.set_exception(exc)
            return
        self.groups += 1
        for (_, future), outcome in zip(group, outcomes, strict=True):
            future.set_result(outcome)  # only now, after the durable commit: a 2xx means recorded

    def _record(self, s: Session, answers: list[Answer]) -> list[AckOutcome]:
        return record_answers(s, self.clock, self.settings, answers)
