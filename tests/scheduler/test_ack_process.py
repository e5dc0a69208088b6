"""The acknowledgement writer process: answers from the event loop are recorded once each, in
groups, durably; a writer process that dies fails the pages waiting for it (never a 2xx) and the
next answer starts another."""
from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.settings import load_settings
from scheduler import ack_process
from scheduler.ack_group import Answer
from scheduler.ack_process import ProcessAckWriter, WriterGone
from tests.scheduler.test_ack_writer import PT, acked_events, sent_tokens


def live_tokens(engine: Engine, clock: FrozenClock) -> list[str]:
    """Sent attempts whose links are valid now (the writer process reads the real clock)."""
    tokens = sent_tokens(engine, clock)
    now = datetime.now(timezone.utc)
    with engine.begin() as c:
        c.execute(PT.update().where(PT.c.token_hash.is_not(None)).values(
            sent_at=now - timedelta(minutes=5), dispatching_at=now - timedelta(minutes=5),
            deadline_at=now + timedelta(hours=1), token_expires_at=now + timedelta(days=1)))
    return tokens


def writer_for(engine: Engine) -> ProcessAckWriter:
    return ProcessAckWriter(load_settings(database_url=engine.url.render_as_string(hide_password=False)))


def test_answers_sent_to_the_writer_process_are_recorded_once_each_in_groups(engine: Engine,
                                                                            clock: FrozenClock) -> None:
    tokens = live_tokens(engine, clock)
    writer = writer_for(engine)

    async def answer_all() -> list[str]:
        outcomes = await asyncio.gather(*(writer.submit_async(Answer(t, "link", "Desk", "test", "192.0.2.1"))
                                          for t in tokens))
        again = await writer.submit_async(Answer(tokens[0], "link", None, "test", "192.0.2.1"))
        return [o.status for o in outcomes] + [again.status]

    try:
        statuses = asyncio.run(answer_all())
    finally:
        writer.close()
    assert statuses == ["acked"] * len(tokens) + ["already"]
    assert 2 <= writer.groups <= len(tokens)  # the first answer alone, the rest grouped behind it
    assert len(acked_events(engine)) == len(tokens)
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).where(PT.c.ack_by == "Desk")).scalar() == len(tokens)


def test_a_writer_process_that_dies_fails_the_pages_waiting_and_the_next_answer_is_recorded(
        engine: Engine, clock: FrozenClock) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("holds SQLite's write lock to keep the answer in flight")
    tokens = live_tokens(engine, clock)
    writer = writer_for(engine)
    held, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        with session_scope(engine):
            held.set()
            release.wait(20)

    holder = threading.Thread(target=hold_the_write_lock)

    async def scenario() -> tuple[BaseException | None, str]:
        holder.start()
        assert held.wait(10)
        waiting = writer.submit_async(Answer(tokens[0], "link", None, "test", "192.0.2.1"))
        await asyncio.sleep(0.5)  # the writer process has the group and waits for the lock
        assert writer._proc is not None  # noqa: SLF001
        writer._proc.kill()  # noqa: SLF001
        try:
            await asyncio.wait_for(waiting, 10)
            lost = None
        except WriterGone as exc:
            lost = exc
        release.set()
        holder.join(10)
        retried = await asyncio.wait_for(writer.submit_async(Answer(tokens[0], "link", None, "test", "192.0.2.1")), 30)
        return lost, retried.status

    try:
        lost, retried = asyncio.run(scenario())
    finally:
        release.set()
        writer.close()
    assert isinstance(lost, WriterGone)
    assert retried == "acked"  # the first never reached the disk; the officer's retry is recorded
    assert len(acked_events(engine)) == 1


def test_the_writer_process_runs_from_a_form_page_until_it_has_been_idle_a_while(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ack_process, "IDLE_SECONDS", 0.5)
    writer = writer_for(engine)
    assert not writer.running  # an idle web process has no writer process

    async def scenario() -> tuple[bool, bool, int | None]:
        writer.warm()  # a form page was shown
        assert writer._proc is not None  # noqa: SLF001
        proc = writer._proc  # noqa: SLF001
        started = writer.running
        await asyncio.sleep(2)
        return started, writer.running, proc.poll()

    try:
        started, still, code = asyncio.run(scenario())
    finally:
        writer.close()
    assert started and not still and code == 0  # closed when idle, and it ended cleanly


def test_closing_the_writer_ends_its_process(engine: Engine) -> None:
    writer = writer_for(engine)

    async def start() -> None:
        writer.warm()

    asyncio.run(start())
    proc = writer._proc  # noqa: SLF001
    assert proc is not None and proc.poll() is None
    writer.close()
    assert proc.wait(10) == 0 and not writer.running


def test_a_database_that_cannot_be_reached_crosses_as_try_again_and_any_other_error_as_an_error() -> None:
    import sqlalchemy as sa

    down = ack_process._portable(sa.exc.OperationalError("UPDATE ping", {}, Exception("connection refused")))  # noqa: SLF001
    bug = ack_process._portable(KeyError("token"))  # noqa: SLF001
    assert isinstance(down, WriterGone) and "connection refused" in str(down)
    assert type(bug) is RuntimeError and "KeyError" in str(bug)
