"""The daemon in a thread of the test process, with a fake leader lock and fake providers:
clean stop, leadership lost, provider faults, an unknown provider at start."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.base import ChannelReport, OutgoingPing, SendResult
from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxRecord, SandboxScript
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.errors import CommtestError, DatabaseError, UnknownChannelKind
from commtest.models import Ping
from commtest.settings import Settings, load_settings
from scheduler.daemon import Daemon
from scheduler.engine import RunEngine
from tests.scheduler.seed import seed_directory, store_playbook

TIMEOUT = 5.0


class FakeLock:
    """A leader lock the test takes away and gives back."""

    def __init__(self) -> None:
        self.free = threading.Event()
        self.free.set()
        self.held = False
        self.valid = True
        self.acquired = 0

    def acquire(self, *, wait: bool, timeout: float | None = None) -> bool:
        if not self.free.is_set() and wait:
            self.free.wait(min(timeout or 0.05, 0.05))
        if self.free.is_set():
            self.held, self.valid = True, True
            self.acquired += 1
            return True
        return False

    def check(self) -> bool:
        return self.held and self.valid

    def release(self) -> None:
        self.held = False

    def describe_holder(self) -> str:
        return "host elsewhere pid 4242"

    def lose(self) -> None:
        """Another daemon took over: our lock is gone and cannot be taken back for now."""
        self.free.clear()
        self.valid = False


class Provider:
    """A provider whose behaviour per address is a function; counts every call."""

    provider = "fake"

    def __init__(self, kind: str, behave: Callable[[OutgoingPing], None] | None = None) -> None:
        self.kind = kind
        self.behave = behave
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def send(self, ping: OutgoingPing) -> SendResult:
        with self._lock:
            self.calls.append(ping.ping_id)
        if self.behave is not None:
            self.behave(ping)
        return SendResult(provider_ref=f"fake-{ping.ping_id}")

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        return []

    def close(self) -> None:
        pass


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


class Harness:
    def __init__(self, engine: Engine, clock: FrozenClock) -> None:
        self.engine = engine
        self.clock = clock
        self.settings: Settings = load_settings(
            database_url=engine.url.render_as_string(hide_password=False), tick_seconds=0.05, dispatch_workers=2)
        self.lock = FakeLock()
        self.daemon: Daemon | None = None
        self.thread: threading.Thread | None = None
        self.code: int | None = None

    def start(self, channels: dict[str, object]) -> Daemon:
        chans = ChannelSet(self.settings, self.clock, channels)  # type: ignore[arg-type]
        self.daemon = Daemon(self.settings, self.engine, self.clock, channels=chans, lock=self.lock)

        def run() -> None:
            assert self.daemon is not None
            self.code = self.daemon.run()

        self.thread = threading.Thread(target=run, name="daemon-under-test", daemon=True)
        self.thread.start()
        return self.daemon

    def start_run(self) -> int:
        runs = RunEngine(self.engine, self.settings, self.clock, ChannelSet(self.settings, self.clock, {}), actor="test")
        try:
            run_id = runs.create_run("test-playbook", started_by="test")
            runs.start_run(run_id)
            return run_id
        finally:
            runs.close()

    def pings(self, run_id: int) -> list[Ping]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(Ping).where(Ping.run_id == run_id).order_by(Ping.id)).all())

    def stop(self) -> int | None:
        if self.daemon is not None and self.thread is not None and self.thread.is_alive():
            self.daemon.stop()
            self.thread.join(TIMEOUT)
            assert not self.thread.is_alive(), "the daemon did not stop"
        return self.code


@pytest.fixture
def harness(engine: Engine, clock: FrozenClock) -> Iterator[Harness]:
    seed_directory(engine)
    store_playbook(engine)  # 2 centres x (email, voice) at start; email retried once after 5 min
    h = Harness(engine, clock)
    yield h
    h.stop()


def never() -> SandboxChannel:
    raise NotImplementedError


def sandbox(kind: str, clock: FrozenClock) -> SandboxChannel:
    return SandboxChannel(kind, clock, SandboxScript(default=Rule("never")), SandboxRecord())


def test_a_clean_stop_lets_the_provider_call_in_flight_finish_and_returns_0(harness: Harness) -> None:
    entered, release = threading.Event(), threading.Event()

    def block(ping: OutgoingPing) -> None:
        entered.set()
        assert release.wait(TIMEOUT)

    email = Provider("email", block)
    voice = Provider("voice")
    run_id = harness.start_run()
    daemon = harness.start({"email": email, "voice": voice, "sms": sandbox("sms", harness.clock)})
    wait_until(entered.is_set, "the provider call to start")
    daemon.stop()
    time.sleep(0.2)
    assert harness.thread is not None and harness.thread.is_alive(), "stop() must wait for the call in flight"
    in_flight = [p.id for p in harness.pings(run_id) if p.state == "dispatching"]
    assert in_flight and len(in_flight) <= harness.settings.dispatch_workers  # a batch is what the workers send
    release.set()
    harness.thread.join(TIMEOUT)
    assert not harness.thread.is_alive()
    assert harness.code == 0
    after = {p.id: p.state for p in harness.pings(run_id)}
    # The calls in flight finished and were recorded; no new batch started after stop():
    # what was never claimed is still pending, for the next leader (never unknown).
    assert all(after[i] == "sent" for i in in_flight)
    assert set(after.values()) <= {"sent", "pending"} and "pending" in after.values()
    assert len(email.calls) + len(voice.calls) == sum(1 for st in after.values() if st == "sent")
    assert not daemon.is_leader.is_set()
    assert harness.lock.held is False  # released on the way out


def test_losing_the_lock_stops_dispatching_at_once_and_goes_back_to_standby(harness: Harness) -> None:
    email, voice = Provider("email"), Provider("voice")
    first = harness.start_run()
    daemon = harness.start({"email": email, "voice": voice, "sms": sandbox("sms", harness.clock)})
    wait_until(lambda: {p.state for p in harness.pings(first)} == {"sent"}, "the first run to be sent")
    assert daemon.is_leader.is_set()
    harness.lock.lose()
    wait_until(lambda: not daemon.is_leader.is_set(), "the daemon to drop leadership")
    second = harness.start_run()  # due now, but nobody may send it
    time.sleep(0.3)  # several ticks' worth
    assert len(email.calls) + len(voice.calls) == 4
    assert {p.state for p in harness.pings(second)} == {"pending"}
    assert harness.thread is not None and harness.thread.is_alive()  # a standby, not an exit
    # The other daemon goes away: this one leads again and sends the second run with the same providers.
    harness.lock.free.set()
    wait_until(lambda: {p.state for p in harness.pings(second)} == {"sent"}, "the second run to be sent")
    assert daemon.is_leader.is_set()
    assert harness.lock.acquired == 2
    assert len(email.calls) + len(voice.calls) == 8
    assert harness.stop() == 0


class DatabaseAway(FakeLock):
    """The database went away with the leader's lock (a PostgreSQL restart): competing again
    fails to connect until it is back."""

    def __init__(self) -> None:
        super().__init__()
        self.refused = 0

    def acquire(self, *, wait: bool, timeout: float | None = None) -> bool:
        if not self.free.is_set() and not wait:
            self.refused += 1  # what PostgresAdvisoryLock raises when it cannot connect
            raise DatabaseError("cannot connect to PostgreSQL for the leader lock: connection refused")
        return super().acquire(wait=wait, timeout=timeout)


def test_a_leader_whose_database_went_away_waits_for_it_and_leads_again_instead_of_exiting(
        harness: Harness) -> None:
    # Found by the fault suite (tests/faults/test_postgres_restart.py): PostgreSQL down for longer
    # than the daemon took to notice made ``commtest daemon`` exit with "cannot connect".
    harness.lock = DatabaseAway()
    email, voice = Provider("email"), Provider("voice")
    first = harness.start_run()
    daemon = harness.start({"email": email, "voice": voice, "sms": sandbox("sms", harness.clock)})
    wait_until(lambda: {p.state for p in harness.pings(first)} == {"sent"}, "the first run to be sent")
    harness.lock.lose()
    wait_until(lambda: harness.lock.refused == 1, "the daemon to compete again while the database is away")
    time.sleep(0.2)
    assert harness.thread is not None and harness.thread.is_alive(), "the daemon exited instead of waiting"
    assert not daemon.is_leader.is_set()
    second = harness.start_run()
    harness.lock.free.set()  # the database is back
    wait_until(lambda: {p.state for p in harness.pings(second)} == {"sent"}, "the second run to be sent")
    assert daemon.is_leader.is_set() and harness.lock.acquired == 2
    assert harness.stop() == 0


def test_a_provider_that_raises_or_times_out_records_provider_failure_and_the_other_pings_go_on(harness: Harness) -> None:
    def fault(ping: OutgoingPing) -> None:
        if ping.address == "desk@xa-one.example":
            raise RuntimeError("socket closed by a provider bug")
        if ping.address == "desk@xb-two.example":
            raise TimeoutError("no answer from the provider within 30 s")

    email, voice = Provider("email", fault), Provider("voice")
    run_id = harness.start_run()
    harness.start({"email": email, "voice": voice, "sms": sandbox("sms", harness.clock)})
    wait_until(lambda: len([p for p in harness.pings(run_id) if p.outcome == "provider_failure"]) == 2,
               "both e-mail pings to fail")
    wait_until(lambda: {p.state for p in harness.pings(run_id) if p.channel == "voice"} == {"sent"}, "voice to be sent")
    assert harness.stop() == 0
    ps = harness.pings(run_id)
    failed = {p.address: p for p in ps if p.outcome == "provider_failure"}
    assert failed["desk@xa-one.example"].error == "RuntimeError: socket closed by a provider bug"
    assert failed["desk@xb-two.example"].error == "TimeoutError: no answer from the provider within 30 s"
    assert {p.state for p in failed.values()} == {"failed"}
    # The playbook allows one retry, 5 minutes later (the frozen clock has not got there).
    retries = [p for p in ps if p.channel == "email" and p.attempt == 2]
    assert {(p.address, p.state) for p in retries} == {("desk@xa-one.example", "pending"), ("desk@xb-two.example", "pending")}
    assert all((p.due_at - harness.clock.now()).total_seconds() == 300 for p in retries)
    assert {p.state for p in ps if p.channel == "voice"} == {"sent"}


def test_an_unknown_channel_provider_fails_at_start_naming_what_is_installed(engine: Engine, clock: FrozenClock) -> None:
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), channels={"email": "pigeon"})
    with pytest.raises(UnknownChannelKind) as err:
        Daemon(settings, engine, clock, lock=FakeLock())
    message = str(err.value)
    assert "no channel provider installed for email.pigeon" in message
    assert "installed: " in message and "email.sandbox" in message and "email.smtp" in message
    assert err.value.exit_code == 2


def test_a_second_daemon_that_may_not_wait_exits_naming_the_leader(harness: Harness) -> None:
    harness.settings = load_settings(database_url=harness.settings.database_url, leader_wait=False)
    harness.lock.lose()
    daemon = Daemon(harness.settings, harness.engine, harness.clock, lock=harness.lock)
    with pytest.raises(CommtestError, match=r"another commtest daemon is the leader \(host elsewhere pid 4242\)"):
        daemon.run()


def test_a_standby_stopped_before_it_ever_leads_returns_0(harness: Harness) -> None:
    harness.lock.lose()
    daemon = harness.start({})
    time.sleep(0.1)
    assert not daemon.is_leader.is_set()
    assert harness.stop() == 0
    assert harness.lock.acquired == 0


def test_dispatch_workers_asking_for_a_channel_at_once_share_one_instance(
    clock: FrozenClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Two instances of one kind lose reports: those queued in the discarded one are never polled.
    import channels.registry as registry

    real = registry.create_channel
    made: list[object] = []

    def slow_create(kind: str, settings: Settings, clock: FrozenClock, provider: str | None = None) -> object:
        time.sleep(0.05)  # providers load lazily (entry point, imports): a wide window
        channel = real(kind, settings, clock, provider)
        made.append(channel)
        return channel

    monkeypatch.setattr(registry, "create_channel", slow_create)
    chans = ChannelSet(load_settings(database_url=f"sqlite:///{tmp_path}/unused.db"), clock)
    start = threading.Barrier(4)
    got: list[object] = []

    def worker() -> None:
        start.wait()
        got.append(chans.get("voice"))

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert len(made) == 1
    assert len(got) == 4 and all(g is made[0] for g in got)
    assert chans.active() == made
