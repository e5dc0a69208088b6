"""scheduler.prepare_process: the dispatcher's next batch, prepared by a helper process one batch
ahead. What is sent, and how often, must not change: every attempt once, nothing lost when the
helper dies."""
from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench._world import playbook, seed
from channels.registry import ChannelSet
from channels.sandbox import KINDS_SANDBOX, Rule, SandboxChannel, SandboxRecord, SandboxScript
from commtest.clock import Clock, FrozenClock, SystemClock
from commtest.db import read_connection, session_scope
from commtest.models import Event, Ping
from commtest.settings import load_settings
from scheduler.dispatch import DueQueue, claim
from scheduler.engine import RunEngine

CONTACT_POINTS = 40  # x 3 channels: 120 attempts, 15 batches of 8


def _runs(engine: Engine, clock: Clock | None = None, prepare_ahead: bool = True,
          **settings: object) -> tuple[RunEngine, SandboxRecord]:
    clock = clock or SystemClock()
    record = SandboxRecord()
    config = load_settings(database_url=engine.url.render_as_string(hide_password=False), dispatch_workers=8,
                           sandbox=True, **settings)
    chans = {k: SandboxChannel(k, clock, SandboxScript(default=Rule("never")), record) for k in KINDS_SANDBOX}
    return RunEngine(engine, config, clock, ChannelSet(config, clock, chans), actor="test",
                     prepare_ahead=prepare_ahead), record


@pytest.fixture
def wave(engine: Engine) -> Iterator[Engine]:
    seed(engine, CONTACT_POINTS, playbook())
    yield engine


def _started_with_helper(engine: Engine) -> tuple[RunEngine, SandboxRecord]:
    runs, record = _runs(engine)
    assert runs.preparer is not None
    runs.preparer.warm()
    assert runs.preparer.wait_ready(60), "the helper process did not start"
    runs.start_run(runs.create_run("bench"))
    return runs, record


def _sent_once(engine: Engine, record: SandboxRecord) -> None:
    sent = [p["ping_id"] for p in record.sent if not p.get("notice")]
    assert len(sent) == len(set(sent)) == 3 * CONTACT_POINTS  # every attempt, each once
    with read_connection(engine) as c:
        states = dict(c.execute(sa.select(Ping.state, sa.func.count()).group_by(Ping.state)).all())
        dispatching = c.execute(sa.select(sa.func.count()).select_from(Event)
                                .where(Event.kind == "ping.dispatching")).scalar()
    assert states == {"sent": 3 * CONTACT_POINTS}
    assert dispatching == 3 * CONTACT_POINTS


def test_a_wave_is_sent_whole_and_once_with_its_batches_prepared_by_the_helper_process(wave: Engine) -> None:
    runs, record = _started_with_helper(wave)
    try:
        while runs.dispatch_due():
            pass
        assert runs.preparer is not None and runs.preparer.batches >= 3 * CONTACT_POINTS // 8  # all of them
    finally:
        runs.close()
    _sent_once(wave, record)


def test_when_the_helper_process_dies_the_dispatcher_prepares_in_its_own_thread(
        wave: Engine, caplog: pytest.LogCaptureFixture) -> None:
    runs, record = _started_with_helper(wave)
    try:
        assert runs.preparer is not None and runs.preparer.pid is not None
        pid = runs.preparer.pid
        assert runs.dispatch_due(limit=16) == 16  # two batches from the helper
        os.kill(pid, signal.SIGKILL)
        while runs.dispatch_due():
            pass
        assert "the dispatcher prepares in its own thread" in caplog.text
        assert runs.preparer.pid != pid  # the next wave's helper is another one
    finally:
        runs.close()
    _sent_once(wave, record)


def test_a_message_that_cannot_be_prepared_fails_alone_and_says_why_through_the_helper(engine: Engine) -> None:
    seed(engine, CONTACT_POINTS, playbook().replace("(code {{ ack_code }})", "(code {{ ack_code.no_such }})"))
    runs, record = _started_with_helper(engine)
    try:
        while runs.dispatch_due():
            pass
    finally:
        runs.close()
    assert record.sent == []
    with read_connection(engine) as c:
        reasons = {r for (r,) in c.execute(sa.select(Ping.error))}
    assert len(reasons) == 1
    reason = reasons.pop()
    # the error's own name and text, as the dispatcher's thread says them
    assert reason is not None and "TemplateError: template 'ping' (en)" in reason and "'no_such'" in reason


def test_a_frozen_clock_the_thread_setting_or_an_engine_that_does_not_send_has_no_helper(
        engine: Engine, clock: FrozenClock) -> None:
    assert _runs(engine, clock)[0].preparer is None  # a frozen clock cannot cross to another process
    assert _runs(engine, dispatch_prepare="thread")[0].preparer is None
    # an engine that only starts or aborts runs (a page, the API) never starts a helper
    assert _runs(engine, prepare_ahead=False)[0].preparer is None


def test_a_due_queue_serves_each_attempt_once_even_while_the_one_before_is_not_claimed(
        wave: Engine, clock: FrozenClock) -> None:
    # As with the helper: batch N+1 is prepared while batch N is being claimed.
    runs, _ = _runs(wave, clock)
    runs.start_run(runs.create_run("bench"))
    now, settings = runs.clock.now(), runs.settings
    queue = DueQueue(window=8)  # reads two batches' worth of ids at a time
    with read_connection(wave) as c:
        first = queue.next_batch(c, now, 8, settings)
        second = queue.next_batch(c, now, 8, settings)
    with session_scope(wave) as s:
        assert len(claim(s, first, now, settings, "test")) == 8
    with read_connection(wave) as c:  # read again: the second batch is still pending, not claimed yet
        third = queue.next_batch(c, now, 8, settings)
    ids = [p.ping_id for p in first.ready + second.ready + third.ready]
    assert len(first.ready) == len(second.ready) == len(third.ready) == 8
    assert len(set(ids)) == 24
    runs.close()
