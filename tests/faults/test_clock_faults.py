"""Time faults on the injected clock, through the real planning and run engine: the DST
changes of 2027 in Europe/Brussels (28 March 02:00 → 03:00, 31 October 03:00 → 02:00) and
wall-clock jumps (forward past a fire time, backward over one). No sleeps: a ``FrozenClock``
is stepped the way a daemon's ticks would see it, a few minutes at a time, with the leader's
housekeeping (``plan_schedules``, ``announce_due``) and ``tick()`` at every step.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxRecord, SandboxScript
from commtest.clock import UTC, FrozenClock
from commtest.db import read_session
from commtest.models import Event, Ping, Schedule, TestRun
from commtest.settings import load_settings
from playbooks.store import sync_folder
from scheduler.engine import RunEngine
from scheduler.planning import announce_due, plan_schedules
from scheduler.specs import spec_for_revision
from scheduler.timing import next_occurrence
from tests.faults import figures
from tests.scheduler.seed import PLAYBOOK, seed_directory

pytestmark = pytest.mark.faults

BRUSSELS = ZoneInfo("Europe/Brussels")
ANNOUNCEMENT = """templates:
  announcement:
    en:
      subject: "Announced communication test on {{ test_at }}"
      body: "Dear {{ contact.name }}, {{ sender }} will test the communication with {{ organisation.name }} on {{ test_at }}."
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Clockwork:
    """The leader's view of time: housekeeping and a tick at every step of the frozen clock."""

    def __init__(self, engine: Engine, clock: FrozenClock, folder: Path) -> None:
        self.engine = engine
        self.clock = clock
        self.folder = folder
        self.record = SandboxRecord()
        self.rng = figures.rng("clock")
        self.steps = 0
        settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), dispatch_workers=2)
        quiet = SandboxScript(default=Rule("never"))
        chans = {k: SandboxChannel(k, clock, quiet, self.record) for k in ("email", "voice", "sms")}
        self.runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, chans), actor="test")  # type: ignore[arg-type]

    def playbook(self, schedules: str, *, announcement: bool = False) -> None:
        text = PLAYBOOK + "schedules:\n" + schedules
        if announcement:
            text = text.replace("templates:\n", ANNOUNCEMENT, 1)
        (self.folder / "playbook.yaml").write_text(text, encoding="utf-8")
        report = sync_folder(self.engine, self.folder, self.clock)
        assert not report.invalid, report.invalid

    def step(self) -> None:
        now = self.clock.now()
        plan_schedules(self.runs, now, self.rng)
        announce_due(self.runs, now)
        self.runs.tick()
        self.steps += 1

    def run_until(self, until: datetime, every: timedelta) -> None:
        while self.clock.now() < until:
            self.step()
            self.clock.advance(every.total_seconds())

    def runs_of(self, key: str) -> list[TestRun]:
        with read_session(self.engine) as s:
            sch = s.exec(select(Schedule).where(Schedule.key == key)).one()
            return list(s.exec(select(TestRun).where(TestRun.schedule_id == sch.id).order_by(TestRun.fire_at)).all())

    def events(self, kind: str) -> list[Event]:
        with read_session(self.engine) as s:
            return list(s.exec(select(Event).where(Event.kind == kind).order_by(Event.id)).all())

    def fired(self, key: str) -> list[datetime]:
        """Fire times of the runs of ``key`` that started, in order."""
        return [r.fire_at for r in self.runs_of(key) if r.started_at is not None]  # type: ignore[misc]

    def assert_nothing_twice(self) -> None:
        started = Counter(e.run_id for e in self.events("run.started"))
        assert [r for r, n in started.items() if n > 1] == [], "a run started twice"
        sends = Counter(e["ping_id"] for e in self.record.sent if not e.get("notice"))
        assert [p for p, n in sends.items() if n > 1] == [], "a ping was sent twice"
        with read_session(self.engine) as s:
            pings = s.exec(select(Ping)).all()
        keys = Counter((p.run_id, p.contact_point_id, p.channel, p.attempt) for p in pings)
        assert [k for k, n in keys.items() if n > 1] == []
        figures.add(clock_steps=self.steps)

    def close(self) -> None:
        self.runs.close()


@pytest.fixture
def clockwork(engine: Engine, tmp_path: Path) -> Iterator[Clockwork]:
    seed_directory(engine)
    folder = tmp_path / "playbooks"
    folder.mkdir()
    cw = Clockwork(engine, FrozenClock(utc(2027, 1, 1)), folder)
    yield cw
    cw.close()


STEP = timedelta(minutes=7)  # never lands on a fire time: each run starts up to 7 minutes late, inside the grace


def _started_within_a_step(cw: Clockwork, key: str) -> None:
    for run in cw.runs_of(key):
        if run.started_at is not None:
            assert timedelta(0) <= run.started_at - run.fire_at < STEP, (run.fire_at, run.started_at)  # type: ignore[operator]


def test_spring_forward_2027_a_02_30_run_fires_once_at_03_00_and_every_hour_fires_once(clockwork: Clockwork) -> None:
    cw = clockwork
    cw.playbook('  - key: nightly\n    cron: "30 2 * * *"\n'
                '  - key: hourly\n    cron: "0 * 28 3 *"\n')
    cw.clock.set(utc(2027, 3, 26, 22, 3))
    cw.run_until(utc(2027, 3, 29, 3, 0), STEP)
    assert cw.fired("nightly") == [
        utc(2027, 3, 27, 1, 30),  # 02:30 CET (UTC+1)
        utc(2027, 3, 28, 1, 0),  # 02:30 does not exist on the 28th: the first instant after the gap, 03:00 CEST
        utc(2027, 3, 29, 0, 30),  # 02:30 CEST (UTC+2)
    ]
    # 28 March local: 00:00-01:00 CET, then (02:00 does not exist, it fires at 03:00 with 03:00 itself: once)
    # 03:00-23:00 CEST. One run per real hour, 23 in all: the day is 23 hours long.
    hourly = cw.fired("hourly")
    assert hourly == [utc(2027, 3, 27, 23)] + [utc(2027, 3, 28, h) for h in range(0, 22)]
    assert [t.astimezone(BRUSSELS).strftime("%H:%M") for t in hourly[:4]] == ["00:00", "01:00", "03:00", "04:00"]
    _started_within_a_step(cw, "nightly")
    _started_within_a_step(cw, "hourly")
    assert cw.events("run.missed") == []
    cw.assert_nothing_twice()


def test_fall_back_2027_a_02_30_run_fires_once_at_its_first_occurrence_and_the_repeated_hour_fires_nothing_more(
        clockwork: Clockwork) -> None:
    cw = clockwork
    cw.playbook('  - key: nightly\n    cron: "30 2 * * *"\n'
                '  - key: hourly\n    cron: "0 * 31 10 *"\n')
    cw.clock.set(utc(2027, 10, 29, 22, 3))
    cw.run_until(utc(2027, 11, 1, 3, 0), STEP)
    assert cw.fired("nightly") == [
        utc(2027, 10, 30, 0, 30),  # 02:30 CEST
        utc(2027, 10, 31, 0, 30),  # 02:30 happens twice on the 31st: the first one (CEST), once
        utc(2027, 11, 1, 1, 30),  # 02:30 CET
    ]
    # 31 October local: 00:00-02:00 CEST, 02:00-23:00 CET. 02:00 comes twice and fires once (the first):
    # 24 wall-clock hours, 24 runs, though the day lasts 25 real hours.
    hourly = cw.fired("hourly")
    assert hourly == [utc(2027, 10, 30, 22), utc(2027, 10, 30, 23), utc(2027, 10, 31, 0)] + [
        utc(2027, 10, 31, h) for h in range(2, 23)]
    assert [t.astimezone(BRUSSELS).strftime("%H:%M %Z") for t in hourly[1:5]] == [
        "01:00 CEST", "02:00 CEST", "03:00 CET", "04:00 CET"]
    _started_within_a_step(cw, "nightly")
    _started_within_a_step(cw, "hourly")
    assert cw.events("run.missed") == []
    cw.assert_nothing_twice()


@pytest.mark.parametrize("late, outcome", [
    (timedelta(minutes=14, seconds=59), "runs"),
    (timedelta(minutes=15), "runs"),  # the grace is inclusive
    (timedelta(minutes=15, seconds=1), "missed"),
])
def test_a_forward_jump_past_a_fire_time_runs_it_once_within_the_misfire_grace_and_records_it_missed_past_it(
        clockwork: Clockwork, late: timedelta, outcome: str) -> None:
    cw = clockwork
    cw.playbook('  - key: daily\n    cron: "0 10 * * *"\n')
    assert cw.runs.settings.misfire_grace == timedelta(minutes=15)
    fire = utc(2027, 6, 14, 8, 0)  # 10:00 CEST
    cw.clock.set(fire - timedelta(minutes=1))
    cw.step()
    assert cw.fired("daily") == []
    cw.clock.set(fire + late)  # the wall clock jumps (a suspended VM resumes, NTP steps the clock)
    for _ in range(3):
        cw.step()
        cw.clock.advance(5)
    [first, following] = cw.runs_of("daily")
    assert first.fire_at == fire and following.fire_at == fire + timedelta(days=1)
    if outcome == "runs":
        assert first.status == "running" and first.started_at == fire + late
        assert len(cw.events("run.started")) == 1 and cw.events("run.missed") == []
        assert len(cw.record.sent) == 4  # e-mail and voice to both centres, once
    else:
        assert first.status == "missed" and first.started_at is None
        [missed] = cw.events("run.missed")
        assert missed.run_id == first.id and "misfire grace" in missed.data["reason"]
        assert cw.events("run.started") == [] and cw.record.sent == []
    assert following.status == "planned"
    cw.assert_nothing_twice()


def test_a_forward_jump_in_the_middle_of_a_run_settles_each_attempt_once_and_plans_each_retry_once(
        clockwork: Clockwork) -> None:
    cw = clockwork
    cw.playbook('  - key: daily\n    cron: "0 10 * * *"\n')
    fire = utc(2027, 6, 14, 8, 0)
    cw.clock.set(fire - timedelta(minutes=1))
    cw.run_until(fire + timedelta(minutes=2), timedelta(seconds=30))
    assert len(cw.record.sent) == 4
    cw.clock.set(fire + timedelta(hours=3))  # past every deadline and every retry interval at once
    for _ in range(6):
        cw.step()
        cw.clock.advance(1)
    with read_session(cw.engine) as s:
        pings = s.exec(select(Ping).order_by(Ping.id)).all()
    settled = Counter(e.ping_id for e in cw.events("ping.settled"))
    assert [p for p, n in settled.items() if n > 1] == []
    # Each e-mail retried once (retries: 1), each call escalated to one SMS, nothing more.
    assert sorted((p.channel, p.attempt) for p in pings) == sorted(
        [("email", 1), ("email", 2), ("voice", 1), ("sms", 1)] * 2)
    cw.assert_nothing_twice()


def test_a_backward_jump_fires_nothing_plans_nothing_and_sends_nothing_twice(clockwork: Clockwork) -> None:
    cw = clockwork
    cw.playbook('  - key: daily\n    cron: "0 10 * * *"\n    announced: true\n    announce_before: 1h\n',
                announcement=True)
    fire = utc(2027, 6, 14, 8, 0)
    cw.clock.set(fire - timedelta(hours=2))
    cw.run_until(fire + timedelta(minutes=10), timedelta(minutes=1))  # announced at 07:00, fired at 08:00
    sent_before = len(cw.record.sent)
    assert len(cw.events("run.announced")) == 1 and len(cw.events("run.started")) == 1
    # The wall clock steps back 90 minutes and lives through the announcement and the fire time again.
    cw.clock.set(fire - timedelta(minutes=80))
    cw.run_until(fire + timedelta(minutes=40), timedelta(minutes=1))
    runs = cw.runs_of("daily")
    assert [r.fire_at for r in runs] == [fire, fire + timedelta(days=1)]
    assert [r.status for r in runs] == ["running", "planned"] or [r.status for r in runs] == ["completed", "planned"]
    assert len(cw.events("run.announced")) == 1  # the announcement of the 14th went once
    assert len(cw.events("run.started")) == 1
    assert len([e for e in cw.record.sent if e.get("notice")]) == 2  # both centres told once
    assert len(cw.record.sent) > sent_before  # retries and escalations went on when their time came again
    cw.assert_nothing_twice()


def test_a_backward_jump_does_not_expire_an_attempt_early_nor_twice(clockwork: Clockwork) -> None:
    cw = clockwork
    cw.playbook('  - key: daily\n    cron: "0 10 * * *"\n')
    fire = utc(2027, 6, 14, 8, 0)
    cw.clock.set(fire - timedelta(minutes=1))
    cw.run_until(fire + timedelta(minutes=1), timedelta(seconds=30))
    with read_session(cw.engine) as s:
        voice = s.exec(select(Ping).where(Ping.channel == "voice")).all()
    deadline = min(p.deadline_at for p in voice)  # type: ignore[type-var]
    cw.clock.set(deadline - timedelta(hours=1))  # back an hour before the calls' deadline
    cw.run_until(deadline - timedelta(seconds=1), timedelta(minutes=3))
    with read_session(cw.engine) as s:
        waiting = {p.state for p in s.exec(select(Ping).where(Ping.channel == "voice")).all()}
    assert waiting <= {"sent", "delivered"}, waiting  # still waiting for an answer: not expired early
    cw.clock.set(deadline)
    cw.step()
    cw.step()
    with read_session(cw.engine) as s:
        states = [p.state for p in s.exec(select(Ping).where(Ping.channel == "voice")).all()]
    assert states == ["expired", "expired"]
    assert Counter(e.ping_id for e in cw.events("ping.settled")).most_common(1)[0][1] == 1
    cw.assert_nothing_twice()


def test_a_window_draw_on_the_spring_forward_night_of_2027_never_lands_in_the_missing_hour(
        clockwork: Clockwork) -> None:
    cw = clockwork
    cw.playbook('  - key: night\n    months: [march]\n    window: {days: sun, start: "01:30", end: "03:30"}\n')
    with read_session(cw.engine) as s:
        sch = s.exec(select(Schedule).where(Schedule.key == "night")).one()
        spec = spec_for_revision(s, sch.revision_id)
    night = next(x for x in spec.schedules if x.key == "night")
    hours = set()
    for seed in range(200):  # the draw the leader stores when it plans (scheduler.planning)
        occ = next_occurrence(night, spec.timezone, utc(2027, 3, 27, 12), random.Random(seed))
        assert occ is not None and occ.window_start is not None and occ.window_end is not None
        local = occ.fire_at.astimezone(BRUSSELS)
        assert local.date().isoformat() == "2027-03-28"
        assert occ.window_start <= occ.fire_at < occ.window_end
        assert occ.window_end - occ.window_start == timedelta(hours=1)  # 01:30 CET to 03:30 CEST: one real hour
        assert not "02:00" <= local.strftime("%H:%M") < "03:00", local
        hours.add(local.hour)
    assert hours == {1, 3}
