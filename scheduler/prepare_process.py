"""The dispatcher's next batch, read and rendered in a process of its own, one batch ahead.

Why a process: preparing a batch (reading its attempts, rendering their messages) is the
dispatcher's costliest step, and pure Python. In the dispatcher's own process it takes turns for
the interpreter lock with everything else: measured on PostgreSQL (bench/bench_dispatch.py), a
batch of 64 spent 18 ms preparing, 9 ms claiming, 2 ms sending; with the batches prepared
beforehand the rest ran at 3,400-4,800 attempts/s against 2,200-2,900 (docs/PERFORMANCE.md).
A thread could not help (tried twice: the threads waited for each other's lock). Here the child
prepares batch N+1 while the dispatcher claims, sends and records batch N.

Nothing changes in what is sent or when: preparing only reads (``DueQueue.next_batch``), the
claim still checks each attempt is ``pending`` (an attempt prepared and not claimed stays
pending, and is prepared again later), and it is still committed, durably, before any provider
call. The child holds no lock and writes nothing; the raw tokens it generates cross a private
socket pair to the dispatcher, never a file.

The child runs only while there is something to send: a run's start warms it (it takes about a
second to start; meanwhile the dispatcher prepares in its own thread, as it always could), and
after ``IDLE_SECONDS`` without a batch the dispatcher closes it, so an idle daemon has none. If
it dies or stops answering, the dispatcher logs it and prepares in its own thread; the next
wave starts another. It ends when the dispatcher's process does (its socket closes).
"""
from __future__ import annotations

import logging
import pickle
import signal
import subprocess
import sys
import time
from datetime import datetime
from multiprocessing.connection import Connection

from commtest.settings import Settings
from scheduler.child_process import spawn
from scheduler.dispatch import DueQueue, Prepared

log = logging.getLogger(__name__)

# A helper with no batch to prepare this long is closed (the next run's start warms it again).
IDLE_SECONDS = 300.0
# A batch not prepared in this time means the helper is stuck: it is replaced by the thread.
ANSWER_SECONDS = 60.0


class PreparerGone(RuntimeError):
    """The helper process ended, or did not answer in time."""


class PrepareFailed(Exception):
    """Why an attempt could not be prepared, as it crosses from the helper: an exception of a
    template or a driver may not unpickle on the other side, so it crosses as its name and text."""

    def __init__(self, kind: str, text: str) -> None:
        super().__init__(kind, text)  # (the arguments are what pickling keeps)
        self.kind, self.text = kind, text

    def __str__(self) -> str:
        return self.text


class ProcessPreparer:
    """``DueQueue.next_batch`` answered by a child process: ``open`` a wave, ``ask`` for a batch
    (at once, it is prepared meanwhile), ``take`` it, ``drop`` one asked and not needed."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._ready = False
        self._asked = False
        self._last = time.monotonic()
        self.batches = 0  # batches the helper prepared (for tests and metrics)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def warm(self) -> None:
        """Have the helper ready soon (returns at once): attempts are about to be due."""
        self._last = time.monotonic()
        if self._conn is None:
            try:
                self._start()
            except OSError as exc:  # the dispatcher prepares in its own thread meanwhile
                log.error("the dispatch helper process cannot be started: %s", exc)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the helper can take a wave (for benchmarks and tests)."""
        give_up = time.monotonic() + timeout
        while not self._is_ready():
            if self._conn is None or time.monotonic() >= give_up:
                return False
            self._conn.poll(0.05)
        return True

    def open(self, window: int) -> bool:
        """A fresh queue of due attempts in the helper, for one wave; False when the helper is
        not ready (yet): prepare in the dispatcher's thread for now."""
        if not self._is_ready():
            return False
        assert self._conn is not None
        self._last = time.monotonic()
        try:
            self._conn.send(("queue", window))
        except (OSError, ValueError) as exc:
            self._lost(f"cannot be reached ({exc})")
            return False
        return True

    def ask(self, now: datetime, batch: int) -> None:
        """Have the next ``batch`` due by ``now`` prepared; ``take`` returns it."""
        assert self._conn is not None and not self._asked
        try:
            self._conn.send(("next", now, batch))
        except (OSError, ValueError) as exc:
            self._lost(f"cannot be reached ({exc})")
            raise PreparerGone(str(exc)) from exc
        self._asked = True

    def take(self) -> Prepared:
        """The batch asked for (waiting for it if need be)."""
        conn = self._conn
        if conn is None or not self._asked:
            raise PreparerGone("no batch was asked for")
        self._asked = False
        try:
            if not conn.poll(ANSWER_SECONDS):
                raise PreparerGone(f"no answer in {ANSWER_SECONDS:.0f} s")
            answer = conn.recv()
        except (EOFError, OSError, pickle.UnpicklingError, PreparerGone) as exc:
            self._lost(f"ended before it answered ({exc})")
            raise PreparerGone(str(exc)) from exc
        if isinstance(answer, PrepareFailed):  # its read failed: the dispatcher's own read says why
            raise PreparerGone(f"{answer.kind}: {answer.text}")
        self._last = time.monotonic()
        self.batches += 1
        prepared: Prepared = answer
        return prepared

    def drop(self) -> None:
        """Forget a batch asked for and not needed (its attempts stay pending)."""
        if self._asked:
            try:
                self.take()
            except PreparerGone:
                pass

    def close_if_idle(self) -> None:
        if self._conn is not None and not self._asked and time.monotonic() - self._last >= IDLE_SECONDS:
            log.info("dispatch helper process closed after %.0f s without a batch", time.monotonic() - self._last)
            self.close()

    def close(self) -> None:
        conn, proc = self._conn, self._proc
        self._conn = self._proc = None
        self._ready = self._asked = False
        if conn is not None:
            conn.close()  # the helper reads end-of-file and exits
        if proc is not None:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def _start(self) -> None:
        self._proc, self._conn = spawn("scheduler.prepare_process", self.settings)
        self._ready = False
        log.info("dispatch helper process %s started", self._proc.pid)

    def _is_ready(self) -> bool:
        """Whether the helper said it is ready (it does once, when its imports are done)."""
        if self._ready:
            return True
        conn = self._conn
        if conn is None:
            return False
        try:
            if conn.poll(0):
                self._ready = conn.recv() == "ready"
        except (EOFError, OSError, pickle.UnpicklingError) as exc:
            self._lost(f"ended while starting ({exc})")
        return self._ready

    def _lost(self, why: str) -> None:
        log.error("the dispatch helper process %s; the dispatcher prepares in its own thread", why)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
        self.close()


class Ahead:
    """One wave's batches from the helper process, asked one ahead; inert when there is no
    helper or it is not ready (the dispatcher prepares in its own thread), and from the moment it
    fails (logged by the preparer)."""

    def __init__(self, preparer: ProcessPreparer | None, window: int) -> None:
        self.preparer = preparer if preparer is not None and preparer.open(window) else None
        self.asked = False

    def ask(self, now: datetime, batch: int) -> None:
        if self.preparer is None or self.asked or batch <= 0:
            return
        try:
            self.preparer.ask(now, batch)
            self.asked = True
        except PreparerGone:
            self.preparer = None

    def take(self, batch: int) -> Prepared | None:
        """The batch asked ahead, at most ``batch`` attempts of it (the rest stay pending); None
        when none was asked or the helper failed."""
        if self.preparer is None or not self.asked:
            return None
        self.asked = False
        try:
            prepared = self.preparer.take()
        except PreparerGone:
            self.preparer = None
            return None
        return Prepared(prepared.ready[:batch], prepared.failed)

    def drop(self) -> None:
        if self.preparer is not None and self.asked:
            self.preparer.drop()
        self.asked = False


def serve(conn: Connection) -> None:
    """The helper: the settings, then a wave's queue and its batches, until end-of-file."""
    from commtest.db import make_engine, read_connection

    # Ctrl-C reaches the whole process group: the dispatcher stops this one by closing the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        settings: Settings = conn.recv()
        engine = make_engine(settings.database_url, pool_size=2, max_overflow=2)
        conn.send("ready")
        queue = DueQueue(1)
        while True:
            message = conn.recv()
            if message[0] == "queue":
                queue = DueQueue(message[1])
                continue
            _, now, batch = message
            try:
                with read_connection(engine) as db:
                    prepared = queue.next_batch(db, now, batch, settings)
            except Exception as exc:  # noqa: BLE001 - the dispatcher reads again itself, and says why
                conn.send(PrepareFailed(type(exc).__name__, str(exc)[:2000]))
                continue
            conn.send(Prepared(prepared.ready, [(ping_id, PrepareFailed(type(exc).__name__, str(exc)[:2000]))
                                                for ping_id, exc in prepared.failed]))
    except (EOFError, OSError):
        return  # the dispatcher ended or closed this helper


if __name__ == "__main__":
    # Run as ``scheduler.prepare_process``, not ``__main__``: what it sends (PrepareFailed) must
    # unpickle in the dispatcher under its module's name.
    from scheduler.prepare_process import serve as _serve

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _serve(Connection(int(sys.argv[1])))
