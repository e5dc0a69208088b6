"""The acknowledgement writer in a process of its own, beside the web app's event loop.

Why a process: the writer thread (``scheduler.ack_writer``) and the event loop share one
interpreter lock. Every statement the writer runs gives the lock away while SQLite works, and
takes it back only when the loop next pauses; every pause of the loop (each socket call) hands
it over while the writer waits. Measured on the acknowledgement benchmark: the pages alone
answer 4,500 POSTs/s, with a writer thread that touches no database 2,900/s, with the real
writer thread 1,300/s. In a process of its own the writer has its own lock and its own core:
the loop only sends each group (one pickled list down a socket) and receives their outcomes.

The contract is the writer thread's: one group in flight at a time, every answer that arrives
meanwhile goes into the next group, a page answers only once its group's durable commit is
done. If the writer process dies, the pages waiting for it get an error (never a 2xx: their
answer may or may not be on disk, and the officer's retry is judged on what is), and the next
answer starts a new one. The writer process ends when the web process does (its socket closes).

It runs only while answers come in: a link's form page starts it (``warm``: an officer who has
the form open is about to answer, and the process takes a second to start), and after
``IDLE_SECONDS`` without an answer the web process closes it, so an idle daemon has none.
"""
from __future__ import annotations

import asyncio
import logging
import pickle
import signal
import subprocess
import sys
from collections import deque
from multiprocessing.connection import Connection

from commtest.settings import Settings
from scheduler.child_process import spawn
from scheduler.ack_group import Answer
from scheduler.ack_writer import MAX_GROUP, AckWriter, settle
from scheduler.acks import AckOutcome

log = logging.getLogger(__name__)

# A writer process with nothing to write this long is closed (a form page starts it again).
IDLE_SECONDS = 600.0


class WriterGone(RuntimeError):
    """The writer process could not record the answer now: it ended before it answered (whether
    the answer was recorded is unknown), or its database could not be reached. The page says to
    try again in a moment."""


class ProcessAckWriter:
    """``submit_async`` as ``AckWriter``'s, recorded by a child process (started by a form page
    or by the first answer; closed when idle)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._waiting: deque[tuple[Answer, asyncio.Future[AckOutcome]]] = deque()
        self._in_flight: list[asyncio.Future[AckOutcome]] | None = None
        self._last = 0.0  # loop time of the last answer or warm-up
        self._idle: asyncio.TimerHandle | None = None
        self.groups = 0

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def warm(self) -> None:
        """Have the writer process ready for an answer soon (called by a link's form page)."""
        loop = asyncio.get_running_loop()
        self._last = loop.time()
        if self._conn is None:
            try:
                self._attached(loop)
            except OSError as exc:  # the answer itself will try again, and say so if it cannot
                log.error("the acknowledgement writer process cannot be started: %s", exc)

    def submit_async(self, answer: Answer) -> asyncio.Future[AckOutcome]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AckOutcome] = loop.create_future()
        self._last = loop.time()
        self._waiting.append((answer, future))
        if self._in_flight is None:
            self._send(loop)
        return future

    def close(self) -> None:
        """Stop the writer process once it has written what it was given (pages waiting fail)."""
        conn, proc = self._conn, self._proc
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._loop is not None and conn is not None:
            try:
                self._loop.remove_reader(conn.fileno())
            except (RuntimeError, ValueError, OSError):  # the loop has closed already
                pass
        self._conn = self._proc = self._loop = None
        if conn is not None:
            conn.close()  # the writer process reads end-of-file and exits
        if proc is not None:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._fail(WriterGone("the acknowledgement writer was stopped"))

    def _start(self) -> Connection:
        self._proc, self._conn = spawn("scheduler.ack_process", self.settings)
        log.info("acknowledgement writer process %s started", self._proc.pid)
        return self._conn

    def _attached(self, loop: asyncio.AbstractEventLoop) -> Connection:
        """The connection to the writer process (started if need be), read by ``loop``."""
        conn = self._conn if self._conn is not None else self._start()
        if self._loop is not loop:
            if self._loop is not None:
                self._loop.remove_reader(conn.fileno())
            if self._idle is not None:
                self._idle.cancel()
            loop.add_reader(conn.fileno(), self._receive)
            self._loop = loop
            self._idle = loop.call_later(IDLE_SECONDS, self._close_if_idle)
        return conn

    def _close_if_idle(self) -> None:
        """Close the writer process when nothing was answered for ``IDLE_SECONDS`` (checked again later if not)."""
        self._idle = None
        loop = self._loop
        if loop is None:
            return
        quiet = loop.time() - self._last
        if self._in_flight is None and not self._waiting and quiet >= IDLE_SECONDS:
            log.info("acknowledgement writer process closed after %.0f s without an answer", quiet)
            self.close()
        else:
            self._idle = loop.call_later(max(1.0, IDLE_SECONDS - quiet), self._close_if_idle)

    def _send(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._waiting:
            return
        group = [self._waiting.popleft() for _ in range(min(MAX_GROUP, len(self._waiting)))]
        self._in_flight = [future for _, future in group]
        try:
            conn = self._attached(loop)
            # One group in flight, a few kilobytes: the socket's buffer takes it without waiting.
            conn.send([answer for answer, _ in group])
        except (OSError, ValueError) as exc:
            log.error("the acknowledgement writer process cannot be reached: %s", exc)
            self._lost(WriterGone(f"the acknowledgement writer cannot be reached ({exc})"))

    def _receive(self) -> None:
        assert self._conn is not None and self._loop is not None
        try:
            outcomes = self._conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            log.error("the acknowledgement writer process ended (%s); answers waiting for it get an error", exc)
            self._lost(WriterGone("the acknowledgement writer ended before it answered"))
            return
        futures, self._in_flight = self._in_flight or [], None
        if len(outcomes) != len(futures):  # never expected: then nobody can tell which answer is which
            self._in_flight = futures
            self._lost(WriterGone(f"the acknowledgement writer answered {len(outcomes)} of {len(futures)}"))
            return
        self.groups += 1
        settle(list(zip(futures, outcomes, strict=True)))
        self._send(self._loop)

    def _lost(self, error: Exception) -> None:
        """The child is gone: fail what waits for it; the next answer starts another."""
        loop, conn, proc = self._loop, self._conn, self._proc
        self._conn = self._proc = self._loop = None
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if loop is not None and conn is not None:
            loop.remove_reader(conn.fileno())
            conn.close()
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait(10)
        self._fail(error)

    def _fail(self, error: Exception) -> None:
        futures = (self._in_flight or []) + [future for _, future in self._waiting]
        self._in_flight = None
        self._waiting.clear()
        for future in futures:
            if not future.done():
                future.set_exception(error)


def serve(conn: Connection) -> None:
    """The writer process: the settings first, then a group at a time until end-of-file."""
    from commtest.clock import SystemClock
    from commtest.db import make_engine, memory_mapped

    # Ctrl-C reaches the whole process group: the web process stops this one by closing the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        settings: Settings = conn.recv()
        # Read through a memory map: a group's random pages cost a system call each otherwise
        # (under load, 216-252 µs of CPU an answer against 257-277, in paired runs).
        engine = memory_mapped(make_engine(settings.database_url))
        writer = AckWriter(engine, SystemClock(), settings)
        while True:
            answers: list[Answer] = conn.recv()
            outcomes = writer.record_group(answers)
            # An error crosses as its message (a driver's exception may not unpickle on the other side).
            conn.send([_portable(o) if isinstance(o, BaseException) else o for o in outcomes])
    except (EOFError, OSError):
        # The web process ended or was killed: what this process committed stays committed; the
        # pages that waited for it had no answer and their officers' retries are judged anew.
        return


def _portable(error: BaseException) -> Exception:
    """``error`` as an exception the web process can unpickle: a database that cannot be reached
    as ``WriterGone`` (the page answers 503, try again), anything else as a ``RuntimeError``."""
    from sqlalchemy.exc import OperationalError

    text = f"{type(error).__name__}: {error}"[:2000]
    return WriterGone(text) if isinstance(error, OperationalError) else RuntimeError(text)


if __name__ == "__main__":
    # Run as ``scheduler.ack_process``, not ``__main__``: a WriterGone it sends must unpickle in
    # the web process under its module's name (as ``__main__.WriterGone`` it would not).
    from scheduler.ack_process import serve as _serve

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _serve(Connection(int(sys.argv[1])))
