"""From schedules to planned runs: draw once and store, next month, DST, pause, announce, misfires."""
from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxScript
from commtest.clock import UTC, FrozenClock
from commtest.db import session_scope
from commtest.models import Event, RunStatus, Schedule, TestRun
from commtest.settings import load_settings
from playbooks.store import sync_folder
from scheduler.engine import RunEngine
from scheduler.planning import announce_due, mark_fired, plan_schedules
from tests.scheduler.seed import PLAYBOOK, seed_directory

BRUSSELS = ZoneInfo("Europe/Brussels")


def playbook_with(schedules: str, playbook_id: str = "test-playbook") -> str:
    return PLAYBOOK.replace("id: test-playbook", f"id: {playbook_id}", 1) + "schedules:\n" + schedules


SPRING = """
  - key: spring
    description: unannounced spring test
    months: [april, may]
    window: {days: mon-fri, start: "09:00", end: "16:00"}
"""


class World:
    def __init__(self, engine: Engine, clock: FrozenClock, folder: Path) -> None:
        self.engine = engine
        self.clock = clock
        self.folder = folder

    def write(self, text: str, name: str = "playbook.yaml") -> None:
        (self.folder / name).write_text(text, encoding="utf-8")
        report = sync_folder(self.engine, self.folder, self.clock)
        assert not report.invalid, report.invalid

    def runs(self, **settings: object) -> RunEngine:
        s = load_settings(database_url=self.engine.url.render_as_string(hide_password=False), dispatch_workers=1,
                          **settings)
        script = SandboxScript(default=Rule("never"))
        chans = {k: SandboxChannel(k, self.clock, script) for k in ("email", "voice", "sms")}
        return RunEngine(self.engine, s, self.clock, ChannelSet(s, self.clock, chans), actor="test")

    def all_runs(self) -> list[TestRun]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(TestRun).order_by(TestRun.id)).all())

    def events(self, kind: str) -> list[Event]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(Event).where(Event.kind == kind).order_by(Event.id)).all())

    def schedule(self, key: str) -> Schedule:
        with session_scope(self.engine) as s:
            row = s.exec(select(Schedule).where(Schedule.key == key)).one()
            return row


@pytest.fixture
def world(engine: Engine, clock: FrozenClock, tmp_path: Path) -> Iterator[World]:
    seed_directory(engine)
    folder = tmp_path / "playbooks"
    folder.mkdir()
    yield World(engine, clock, folder)


def test_a_months_window_schedule_plans_one_stored_run_inside_its_window_on_a_weekday(world: World) -> None:
    world.write(playbook_with(SPRING))
    runs = world.runs()
    created = plan_schedules(runs, world.clock.now(), random.Random(1))
    assert len(created) == 1
    [run] = world.all_runs()
    assert run.id == created[0]
    assert (run.status, run.trigger, run.announced) == ("planned", "schedule", False)
    local = run.fire_at.astimezone(BRUSSELS)
    assert (local.year, local.month) == (2026, 4)
    assert local.weekday() < 5
    assert local.replace(tzinfo=None).time() >= datetime(2026, 1, 1, 9).time()
    assert local.replace(tzinfo=None).time() < datetime(2026, 1, 1, 16).time()
    assert run.fire_at > world.clock.now()
    # the window is stored with it, in UTC, on the drawn day
    assert run.window_start.astimezone(BRUSSELS) == datetime.combine(local.date(), datetime.min.time().replace(hour=9), BRUSSELS)
    assert run.window_start <= run.fire_at < run.window_end
    assert world.schedule("spring").next_fire_at == run.fire_at
    assert [e.run_id for e in world.events("run.planned")] == [run.id]


def test_planning_again_after_a_restart_does_not_draw_again(world: World) -> None:
    world.write(playbook_with(SPRING))
    first = plan_schedules(world.runs(), world.clock.now(), random.Random(1))
    world.clock.advance(hours=3)
    # A restarted daemon: new engine, another random generator.
    again = plan_schedules(world.runs(), world.clock.now(), random.Random(999))
    assert again == []
    runs = world.all_runs()
    assert [r.id for r in runs] == first
    assert len(world.events("run.planned")) == 1


def test_once_the_run_started_the_next_is_planned_in_the_next_listed_month_never_the_same(world: World) -> None:
    world.write(playbook_with(SPRING))
    runs = world.runs()
    plan_schedules(runs, world.clock.now(), random.Random(5))
    first = world.all_runs()[0]
    # April still has eligible days after the first fire time: they must not be used.
    assert first.fire_at.astimezone(BRUSSELS).day < 30
    world.clock.set(first.fire_at)
    assert runs.start_due_runs(world.clock.now()) == (1, 0)
    [second_id] = plan_schedules(runs, world.clock.now(), random.Random(5))
    second = next(r for r in world.all_runs() if r.id == second_id)
    local = second.fire_at.astimezone(BRUSSELS)
    assert (local.year, local.month) == (2026, 5)
    assert local.weekday() < 5 and 9 <= local.hour < 16
    # and after May, the next listed month is April of next year
    world.clock.set(second.fire_at)
    runs.start_due_runs(world.clock.now())
    [third_id] = plan_schedules(runs, world.clock.now(), random.Random(5))
    third = next(r for r in world.all_runs() if r.id == third_id)
    assert third.fire_at.astimezone(BRUSSELS).strftime("%Y-%m") == "2027-04"
    mark_fired(runs)
    assert world.schedule("spring").last_fire_at == second.fire_at


def test_a_cron_schedule_across_the_spring_dst_change_keeps_firing_at_10_local(world: World) -> None:
    world.write(playbook_with('  - key: daily\n    cron: "0 10 * 3,4 *"\n    announced: true\n'))
    runs = world.runs()
    world.clock.set(datetime(2026, 3, 27, 12, 0, tzinfo=UTC))
    fire_times = []
    for _ in range(3):
        [run_id] = plan_schedules(runs, world.clock.now(), random.Random(0))
        run = next(r for r in world.all_runs() if r.id == run_id)
        fire_times.append(run.fire_at)
        world.clock.set(run.fire_at)
        runs.start_due_runs(world.clock.now())
    assert fire_times == [
        datetime(2026, 3, 28, 9, 0, tzinfo=UTC),  # Saturday, CET (UTC+1)
        datetime(2026, 3, 29, 8, 0, tzinfo=UTC),  # Sunday, the change at 02:00: CEST (UTC+2)
        datetime(2026, 3, 30, 8, 0, tzinfo=UTC),
    ]


def test_a_paused_schedule_plans_nothing(world: World) -> None:
    world.write(playbook_with(SPRING))
    with session_scope(world.engine) as s:
        sch = s.exec(select(Schedule).where(Schedule.key == "spring")).one()
        sch.paused = True
        s.add(sch)
    assert plan_schedules(world.runs(), world.clock.now(), random.Random(1)) == []
    assert world.all_runs() == []


ANNOUNCED = """
  - key: monthly
    cron: "0 10 20 * *"
    announced: true
    announce_before: 2d
"""


ANNOUNCEMENT_TEMPLATE = """templates:
  announcement:
    en:
      subject: "Announced communication test on {{ test_at }}"
      body: "Dear {{ contact.name }}, {{ sender }} will test the communication with {{ organisation.name }} on {{ test_at }}."
"""


def test_an_announced_schedule_records_its_announcement_once_when_announce_before_comes(world: World) -> None:
    world.write(playbook_with(ANNOUNCED).replace("templates:\n", ANNOUNCEMENT_TEMPLATE, 1))
    runs = world.runs()
    [run_id] = plan_schedules(runs, world.clock.now(), random.Random(0))
    run = world.all_runs()[0]
    assert run.fire_at == datetime(2026, 4, 20, 8, 0, tzinfo=UTC)  # 10:00 CEST
    assert run.announced
    world.clock.set(run.fire_at - timedelta(days=2, seconds=1))
    assert announce_due(runs, world.clock.now()) == 0
    world.clock.advance(1)
    assert announce_due(runs, world.clock.now()) == 1
    world.clock.advance(minutes=5)
    assert announce_due(runs, world.clock.now()) == 0  # only once
    [announced] = world.events("run.announced")
    assert announced.run_id == run_id
    assert announced.at == run.fire_at - timedelta(days=2)
    # every participant's e-mail endpoint was told, once, in its language, with the moment
    notices = [e for e in runs.channels.get("email").record.sent if e.get("notice")]
    assert sorted(n["address"] for n in notices) == ["desk@xa-one.example", "desk@xb-two.example"]
    assert all(n["subject"].endswith("10:00 CEST") for n in notices), [n["subject"] for n in notices]


def test_an_unannounced_schedule_is_never_announced(world: World) -> None:
    world.write(playbook_with(SPRING))
    runs = world.runs()
    plan_schedules(runs, world.clock.now(), random.Random(1))
    world.clock.set(world.all_runs()[0].fire_at - timedelta(seconds=1))
    assert announce_due(runs, world.clock.now()) == 0
    assert world.events("run.announced") == []


def test_the_log_of_planning_an_unannounced_run_does_not_reveal_its_moment(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    world.write(playbook_with(SPRING))
    with caplog.at_level(logging.DEBUG):
        plan_schedules(world.runs(), world.clock.now(), random.Random(1))
    fire_at = world.all_runs()[0].fire_at
    text = caplog.text
    assert "planned unannounced run" in text
    for shown in (fire_at.isoformat(), fire_at.astimezone(BRUSSELS).strftime("%H:%M:%S"), fire_at.strftime("%H:%M:%S")):
        assert shown not in text


def _plan_at(world: World, runs: RunEngine, fire_at: datetime) -> int:
    world.clock.set(fire_at - timedelta(hours=1))
    [run_id] = plan_schedules(runs, world.clock.now(), random.Random(0))
    assert next(r for r in world.all_runs() if r.id == run_id).fire_at == fire_at
    return run_id


def test_a_planned_run_missed_by_more_than_the_grace_is_recorded_missed_and_the_next_one_is_planned(world: World) -> None:
    world.write(playbook_with(ANNOUNCED).replace("templates:\n", ANNOUNCEMENT_TEMPLATE, 1))
    runs = world.runs()
    assert runs.settings.misfire_grace == timedelta(minutes=15)
    fire = datetime(2026, 4, 20, 8, 0, tzinfo=UTC)
    run_id = _plan_at(world, runs, fire)
    world.clock.set(fire + timedelta(minutes=15, seconds=1))  # the daemon was down
    stats = runs.tick()
    assert (stats.started, stats.missed) == (0, 1)
    run = next(r for r in world.all_runs() if r.id == run_id)
    assert run.status == RunStatus.missed.value
    [missed] = world.events("run.missed")
    assert missed.run_id == run_id and "misfire grace" in missed.data["reason"]
    assert world.events("run.started") == []
    [next_id] = plan_schedules(runs, world.clock.now(), random.Random(0))
    assert next(r for r in world.all_runs() if r.id == next_id).fire_at == datetime(2026, 5, 20, 8, 0, tzinfo=UTC)


def test_a_planned_run_late_by_no_more_than_the_grace_still_runs(world: World) -> None:
    world.write(playbook_with(ANNOUNCED).replace("templates:\n", ANNOUNCEMENT_TEMPLATE, 1))
    runs = world.runs()
    fire = datetime(2026, 4, 20, 8, 0, tzinfo=UTC)
    run_id = _plan_at(world, runs, fire)
    world.clock.set(fire + timedelta(minutes=15))
    assert runs.tick().started == 1
    assert next(r for r in world.all_runs() if r.id == run_id).status == RunStatus.running.value
    assert world.events("run.missed") == []


def test_the_misfire_grace_is_a_setting(world: World) -> None:
    world.write(playbook_with(ANNOUNCED).replace("templates:\n", ANNOUNCEMENT_TEMPLATE, 1))
    runs = world.runs(misfire_grace=timedelta(hours=1))
    fire = datetime(2026, 4, 20, 8, 0, tzinfo=UTC)
    run_id = _plan_at(world, runs, fire)
    world.clock.set(fire + timedelta(minutes=45))
    assert runs.tick().started == 1
    assert next(r for r in world.all_runs() if r.id == run_id).status == RunStatus.running.value
