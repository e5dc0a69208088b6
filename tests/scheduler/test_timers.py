"""The leader's timers: work runs when its instant comes, not at the next tick; deadlines due
together are decided in one batch, each stamped when it is written; the daemon uses them."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxRecord, SandboxScript
from commtest.clock import UTC, FrozenClock
from commtest.db import session_scope
from commtest.errors import LeadershipLost
from commtest.models import Event, Ping
from commtest.settings import load_settings
from scheduler.daemon import Daemon
from scheduler.engine import RunEngine
from scheduler.timers import LeaderTimers, Timer
from tests.scheduler.seed import seed_directory, store_playbook
from tests.scheduler.test_daemon_inprocess import FakeLock

TIMEOUT = 10.0
KINDS = ("email", "voice", "sms", "video", "cap")


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Recorder:
    def __init__(self, fail_first: int = 0) -> None:
        self.calls: list[datetime] = []
        self.fail_first = fail_first

    def __call__(self, now: datetime) -> None:
        self.calls.append(now)
        if len(self.calls) <= self.fail_first:
            raise RuntimeError("the database went away")


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_a_timer_runs_its_work_when_the_earliest_instant_comes_and_not_before(
        clock: FrozenClock, stop: threading.Event) -> None:
    work = Recorder()
    timer = Timer("deadline", clock, work, idle_wait=60, on_lost=stop.set)
    timer.add([clock.now() + timedelta(seconds=30), clock.now() + timedelta(seconds=10)])
    timer.start(stop)
    time.sleep(0.2)
    assert work.calls == []  # nothing is due yet: the timer sleeps, it does not poll the work
    clock.advance(10)
    wait_until(lambda: len(work.calls) == 1, "the first instant")
    assert work.calls[0] == clock.now()
    time.sleep(0.1)
    assert len(work.calls) == 1  # the second instant is not due yet
    clock.advance(20)
    wait_until(lambda: len(work.calls) == 2, "the second instant")
    assert timer.pending() == 0


def test_the_same_instant_told_twice_wakes_the_timer_once(clock: FrozenClock, stop: threading.Event) -> None:
    work = Recorder()
    timer = Timer("dispatch", clock, work, idle_wait=60, on_lost=stop.set)
    at = clock.now() + timedelta(seconds=5)
    timer.add([at, at])
    timer.add([at])
    assert timer.pending() == 1
    timer.start(stop)
    clock.advance(5)
    wait_until(lambda: len(work.calls) == 1, "the instant")
    time.sleep(0.1)
    assert len(work.calls) == 1


def test_work_that_fails_is_tried_again_and_the_timer_goes_on(clock: FrozenClock, stop: threading.Event) -> None:
    work = Recorder(fail_first=2)
    timer = Timer("deadline", clock, work, idle_wait=0.05, on_lost=stop.set)
    timer.add([clock.now()])
    timer.start(stop)
    wait_until(lambda: len(work.calls) >= 3, "two retries after two failures")
    clock.advance(5)
    timer.add([clock.now()])
    wait_until(lambda: len(work.calls) >= 4, "the next instant after the failures")


def test_leadership_lost_during_the_work_ends_the_timer_and_says_so(clock: FrozenClock, stop: threading.Event) -> None:
    lost = threading.Event()

    def work(now: datetime) -> None:
        raise LeadershipLost("another daemon leads")

    timer = Timer("dispatch", clock, work, idle_wait=0.05, on_lost=lost.set)
    timer.add([clock.now()])
    timer.start(stop)
    assert lost.wait(TIMEOUT)
    timer.join(TIMEOUT)


# -- the engine's deadline decisions ----------------------------------------------------------------

@pytest.fixture
def world(engine: Engine) -> Engine:
    seed_directory(engine)
    store_playbook(engine)  # 2 centres x (email 15 min, voice 5 min -> sms 10 min)
    return engine


def make_runs(engine: Engine, clock: FrozenClock, script: SandboxScript | None = None) -> RunEngine:
    record = SandboxRecord()
    script = script or SandboxScript(default=Rule("never"))
    chans = {k: SandboxChannel(k, clock, script, record) for k in KINDS}
    settings = load_settings(database_url=str(engine.url), dispatch_workers=4)
    return RunEngine(engine, settings, clock, ChannelSet(settings, clock, chans), actor="test")


def settled_events(engine: Engine, run_id: int) -> list[Event]:
    with session_scope(engine) as s:
        return list(s.exec(select(Event).where(Event.run_id == run_id, Event.kind == "ping.settled")).all())


def test_deadlines_that_pass_together_are_decided_in_one_batch_with_one_event_each(
        world: Engine, clock: FrozenClock) -> None:
    runs = make_runs(world, clock)
    try:
        run_id = runs.create_run("test-playbook")
        runs.start_run(run_id)
        runs.dispatch_due()
        clock.advance(minutes=16)  # both e-mails (15 min) and both calls (5 min) are past their deadline
        assert runs.expire_due(clock.now()) == 4
        assert runs.expire_due(clock.now()) == 0  # decided once
        events = settled_events(world, run_id)
        assert sorted(e.outcome or "" for e in events) == ["delivered_no_ack"] * 4
        assert len({e.ping_id for e in events}) == 4
        with session_scope(world) as s:
            planned = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.state == "pending")).all()
        # The e-mails are retried (retries: 1, after 5 min); the calls escalate to SMS at once.
        assert sorted((p.channel, p.attempt) for p in planned) == [("email", 2), ("email", 2), ("sms", 1), ("sms", 1)]
        retries = [p for p in planned if p.channel == "email"]
        assert all(p.due_at == clock.now() + timedelta(minutes=5) for p in retries)
    finally:
        runs.close()


def test_a_decision_is_stamped_when_it_is_written_and_its_lateness_is_reported(world: Engine) -> None:
    class Ticking(FrozenClock):
        """Each reading a second later: a decision written after it was due says so."""

        def now(self) -> datetime:
            return self.advance(1)

    clock = Ticking(datetime(2026, 12, 7, 9, 0, tzinfo=UTC))
    runs = make_runs(world, clock)
    try:
        run_id = runs.create_run("test-playbook")
        runs.start_run(run_id)
        runs.dispatch_due()
        clock.set(clock.now() + timedelta(minutes=6))
        due_by = clock.now()
        assert runs.expire_due(due_by) == 2  # the two calls
        with session_scope(world) as s:
            calls = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "voice")).all()
        assert all(p.settled_at is not None and p.settled_at > due_by for p in calls)
        latest, worst, retries = runs.decision_lateness()
        assert worst >= latest > 0 and retries == 0
        assert runs.decision_lateness()[1] == 0  # the worst is reset once read
    finally:
        runs.close()


def test_an_answer_recorded_before_the_batch_is_written_wins_over_its_deadline(world: Engine, clock: FrozenClock) -> None:
    from scheduler import records

    runs = make_runs(world, clock)
    try:
        run_id = runs.create_run("test-playbook")
        runs.start_run(run_id)
        runs.dispatch_due()
        with session_scope(world) as s:
            first = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "voice")).first()
            assert first is not None
            clock.advance(minutes=5, seconds=1)
            records.acknowledge(s, first, clock.now(), method="keypress", actor="test")
        assert runs.expire_due(clock.now()) == 1  # only the other call
        with session_scope(world) as s:
            answered = s.get(Ping, first.id)
            assert answered is not None and answered.outcome == "acked_late" and answered.state == "acked"
            n = s.exec(select(func.count()).select_from(Event).where(Event.ping_id == first.id,
                                                                    Event.kind == "ping.settled")).one()
        assert n == 1
    finally:
        runs.close()


def test_the_leaders_timers_start_from_what_the_database_holds(world: Engine, clock: FrozenClock,
                                                               stop: threading.Event) -> None:
    runs = make_runs(world, clock)
    try:
        run_id = runs.create_run("test-playbook")
        runs.start_run(run_id)
        runs.dispatch_due()
    finally:
        runs.close()
    seen: list[datetime] = []
    timers = LeaderTimers(world, clock, dispatch=seen.append, deadlines=seen.append, idle_wait=60, on_lost=stop.set)
    timers.start(stop)
    # The deadlines of the 4 attempts sent (two instants: 5 min and 15 min after sending).
    assert timers.deadlines.pending() == 2
    assert timers.dispatch.pending() == 0
    clock.advance(minutes=5)
    wait_until(lambda: len(seen) == 1, "the calls' deadline")


def test_the_daemon_decides_a_deadline_when_it_passes_without_waiting_for_a_tick(world: Engine, clock: FrozenClock) -> None:
    # A tick every 10 minutes: only the timers can make the decisions below in time.
    settings = load_settings(database_url=str(world.url), tick_seconds=600, dispatch_workers=2)
    record = SandboxRecord()
    script = SandboxScript(default=Rule("never"))
    chans = ChannelSet(settings, clock, {k: SandboxChannel(k, clock, script, record) for k in KINDS})
    daemon = Daemon(settings, world, clock, channels=chans, lock=FakeLock())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        assert daemon.is_leader.wait(TIMEOUT)
        runs = make_runs(world, clock)
        run_id = runs.create_run("test-playbook")
        runs.close()
        # The first tick ran at start: the run planned now is started by the next tick, in 10
        # minutes; the test starts it as the console's "run now" would have, then tells nobody.
        starter = make_runs(world, clock)
        starter.start_run(run_id)
        starter.close()
        assert daemon.timers is not None
        daemon.timers.refresh()  # what every tick does: it finds the attempts due now
        wait_until(lambda: len(record.sent) == 4, "the four first attempts to be sent")

        def recorded() -> bool:  # the sends are recorded (with their deadlines) after the provider calls
            with session_scope(world) as s:
                return len(s.exec(select(Ping).where(Ping.run_id == run_id, Ping.state == "sent")).all()) == 4

        wait_until(recorded, "the four sends to be recorded")
        clock.advance(minutes=5, seconds=1)
        wait_until(lambda: len([e for e in settled_events(world, run_id) if e.channel == "voice"]) == 2,
                   "both calls' deadlines to be decided")
        wait_until(lambda: len(record.sent) == 6, "both escalations to SMS to be sent")
    finally:
        daemon.stop()
        thread.join(TIMEOUT)
    assert not thread.is_alive()


BACKOFF_PLAYBOOK = """
id: backoff
title: Backoff
owner: XA-COORD
timezone: Europe/Brussels
default_language: en
participants:
  - organisation: XA-ONE
    fields: [crisis-desk]
steps:
  - {id: sms, channel: sms, template: ping, ack_deadline: 5m, retries: 3, retry_interval: 1s}
templates:
  ping:
    en:
      subject: "Communication test {{ run.id }}"
      body: "Please confirm: {{ ack_url }} (code {{ ack_code }}) before {{ deadline }}."
"""


def test_a_provider_that_keeps_failing_is_left_alone_longer_each_time(engine: Engine, clock: FrozenClock) -> None:
    seed_directory(engine)
    store_playbook(engine, BACKOFF_PLAYBOOK, playbook_id="backoff")
    runs = make_runs(engine, clock, SandboxScript(default=Rule("fail")))  # a 503 every time
    try:
        run_id = runs.create_run("backoff")
        runs.start_run(run_id)
        gaps = []
        for _ in range(4):
            runs.dispatch_due()
            with session_scope(engine) as s:
                due = s.exec(select(Ping.due_at).where(Ping.run_id == run_id, Ping.state == "pending")).all()
            if not due:
                break
            gaps.append((due[0] - clock.now()).total_seconds())
            clock.set(due[0])
        # 10 s, 20 s, 40 s: the playbook's 1 s interval would hammer a provider that is down.
        assert gaps == [10.0, 20.0, 40.0]
    finally:
        runs.close()
