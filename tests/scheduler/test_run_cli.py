"""``commtest run``, ``schedule ...`` and ``runs ...`` through the CLI, on SQLite and PostgreSQL.

``run --now`` drives a whole test in real time against the sandbox providers (everyone
answers after 1 s, ticks every 50 ms), so it finishes in about a second.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.clock import SystemClock
from commtest.db import make_engine, session_scope
from commtest.models import Event, Ping, Schedule, TestRun
from commtest.settings import load_settings
from playbooks.store import sync_folder
from scheduler.engine import RunEngine
from scheduler.planning import plan_schedules
from tests.scheduler.seed import fast_playbook, seed_directory

SCHEDULES = """schedules:
  - key: spring
    description: unannounced, any month
    months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    window: {days: mon-sun, start: "09:00", end: "16:00"}
  - key: drill
    description: announced daily drill
    cron: "30 10 * * *"
    announced: true
"""

Run = Callable[..., Result]


@dataclass
class Cli:
    run: Run
    engine: Engine
    folder: Path

    def runs(self) -> list[TestRun]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(TestRun).order_by(TestRun.id)).all())

    def pings(self, run_id: int) -> list[Ping]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(Ping).where(Ping.run_id == run_id).order_by(Ping.id)).all())


@pytest.fixture
def cli(run_cli: Run, cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "fast.yaml").write_text(fast_playbook(["XA-ONE", "XB-TWO"], deadline="5s") + SCHEDULES, encoding="utf-8")
    script = tmp_path / "script.yaml"
    script.write_text("default: {behaviour: ack, after: 1s, by: Duty Officer Example}\n", encoding="utf-8")
    monkeypatch.setenv("COMMTEST_PLAYBOOK_DIR", str(folder))
    monkeypatch.setenv("COMMTEST_SANDBOX_SCRIPT", str(script))
    monkeypatch.setenv("COMMTEST_TICK_SECONDS", "0.05")
    monkeypatch.setenv("COMMTEST_DISPATCH_WORKERS", "2")
    engine = make_engine(cli_env["COMMTEST_DATABASE_URL"])
    seed_directory(engine)
    yield Cli(run_cli, engine, folder)
    engine.dispose()


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def test_a_dry_run_prints_every_ping_and_writes_no_run(cli: Cli) -> None:
    out = ok(cli.run("run", "fast-playbook", "--now", "--dry-run"))
    assert "4 ping(s) would be sent now (nothing is sent)" in out
    for address in ("desk@xa-one.example", "desk@xb-two.example", "+3225550100", "+4925550100"):
        assert address in out
    assert "only on escalation: sms (sms)" in out
    assert cli.runs() == []


def test_a_dry_run_shows_when_each_ping_goes_and_its_deadline_as_every_report_does(cli: Cli) -> None:
    timed = fast_playbook(["XA-ONE"], deadline="15m").replace("id: fast-playbook", "id: timed-playbook")
    timed = timed.replace("    channel: voice\n", "    channel: voice\n    start_after: 3m16s\n", 1)
    (cli.folder / "timed.yaml").write_text(timed, encoding="utf-8")
    out = ok(cli.run("run", "timed-playbook", "--now", "--dry-run"))
    rows = {line.split("│")[4].strip(): [c.strip() for c in line.split("│")] for line in out.splitlines()
            if line.count("│") > 7 and "+" in line}
    assert (rows["voice"][7], rows["voice"][8]) == ("+3 min 16 s", "15 min")
    assert (rows["email"][7], rows["email"][8]) == ("+0 s", "15 min")
    assert "3m16s" not in out and "15m " not in out


def test_run_now_drives_the_test_to_completion_and_prints_the_table_per_organisation(cli: Cli) -> None:
    out = ok(cli.run("run", "fast-playbook", "--now", "--by", "coordinator"))
    [run] = cli.runs()
    assert f"run {run.id} started: 4 ping(s) planned" in out
    assert run.status == "completed" and run.started_by == "coordinator"
    assert {(p.state, p.outcome) for p in cli.pings(run.id or 0)} == {("acked", "acked")}
    rows = table_rows(out)
    assert {(r[0], r[1]) for r in rows} == {("XA-ONE", "email"), ("XA-ONE", "voice"), ("XB-TWO", "email"), ("XB-TWO", "voice")}
    for org, channel, checks, acked, sent, response, target, outcome, verdict in rows:
        assert (checks, acked, sent, target, outcome) == ("1", "1", "1", "5 s", "acked")
        # The sandbox answered: a pass, marked as simulated (never evidence).
        assert verdict == "pass SIMULATED"
        assert response in ("0 s", "1 s")
    assert "status completed" in out


def test_runs_list_and_show_report_a_finished_run(cli: Cli) -> None:
    ok(cli.run("run", "fast-playbook", "--now"))
    [run] = cli.runs()
    listing = ok(cli.run("runs", "list"))
    assert re.search(rf"│ {run.id} +│ fast-playbook +│ manual +│ completed", listing)
    shown = ok(cli.run("runs", "show", str(run.id), "--pings"))
    assert f"run {run.id}: Fast playbook (fast-playbook @ " in shown
    assert "per organisation and channel" in shown
    for column in ("sent", "acknowledged", "response time", "outcome"):
        assert column in shown
    assert len(table_rows(shown)) == 4
    assert shown.count("acked") >= 8  # the ping list says it again per ping


def test_runs_show_pings_names_each_contact_point_by_its_code(cli: Cli) -> None:
    ok(cli.run("run", "fast-playbook", "--now"))
    [run] = cli.runs()
    shown = ok(cli.run("runs", "show", str(run.id), "--pings"))
    section = shown.split("pings", 2)[-1]
    rows = [[c.strip() for c in line.strip().strip("│").split("│")] for line in section.splitlines()]
    rows = [cells for cells in rows if len(cells) == 14 and cells[0].isdigit()]
    assert {(cells[1], cells[2]) for cells in rows} == {
        ("XA-ONE", "XA-ONE/crisis-desk"), ("XB-TWO", "XB-TWO/crisis-desk")
    }
    assert len(rows) == len(cli.pings(run.id))


def test_runs_list_and_show_answer_at_once_while_another_process_holds_the_write_lock(cli: Cli) -> None:
    """Reads never lock writers, nor wait for them (ARCHITECTURE.md, "Invariants")."""
    import sqlite3
    import threading
    import time

    from commtest.db import sqlite_path

    if cli.engine.dialect.name != "sqlite":
        pytest.skip("about SQLite's write lock")
    path = sqlite_path(cli.engine.url.render_as_string(hide_password=False))
    assert path is not None
    ok(cli.run("run", "fast-playbook", "--now", "--no-wait"))
    [run] = cli.runs()
    held, done = threading.Event(), threading.Event()

    def writer() -> None:  # a daemon's write transaction that takes its time: 20 s at most
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        done.wait(20)
        conn.execute("ROLLBACK")
        conn.close()

    holder = threading.Thread(target=writer)
    holder.start()
    try:
        assert held.wait(10)
        for args in (("runs", "list"), ("runs", "show", str(run.id), "--pings"), ("directory", "show")):
            started = time.monotonic()
            out = ok(cli.run(*args))
            assert time.monotonic() - started < 5, f"{' '.join(args)} waited for the writer"
            assert out
    finally:
        done.set()
        holder.join(30)


def test_runs_show_of_an_unknown_run_exits_2_with_a_hint(cli: Cli) -> None:
    result = cli.run("runs", "show", "999")
    assert result.exit_code == 2
    assert "error: run 999 not found; `commtest runs list` shows the runs" in result.stderr


def test_runs_abort_cancels_the_pings_not_sent_yet(cli: Cli) -> None:
    out = ok(cli.run("run", "fast-playbook", "--now", "--no-wait"))
    assert "--no-wait: the run continues when a daemon starts" in out
    [run] = cli.runs()
    assert run.status == "running"
    out = ok(cli.run("runs", "abort", str(run.id), "--reason", "exercise called off"))
    assert f"run {run.id} aborted; 4 ping(s) not sent were cancelled" in out
    [run] = cli.runs()
    assert run.status == "aborted"
    assert {p.state for p in cli.pings(run.id or 0)} == {"cancelled"}
    with session_scope(cli.engine) as s:
        ev = s.exec(select(Event).where(Event.run_id == run.id, Event.kind == "run.aborted")).one()
        assert ev.data["reason"] == "exercise called off"
    assert "status aborted" in ok(cli.run("runs", "show", str(run.id)))


def test_runs_abort_of_an_unknown_run_exits_2(cli: Cli) -> None:
    result = cli.run("runs", "abort", "999")
    assert result.exit_code == 2
    assert "error: run 999 not found" in result.stderr


@pytest.mark.parametrize("args", [("run", "no-such-playbook", "--now"), ("run", "no-such-playbook", "--now", "--dry-run")])
def test_an_unknown_playbook_exits_2_and_says_where_to_look(cli: Cli, args: tuple[str, ...]) -> None:
    result = cli.run(*args)
    assert result.exit_code == 2
    assert "error: playbook 'no-such-playbook' not found; `commtest playbook list` shows the known ones" in result.stderr
    assert cli.runs() == []


def plan(cli: Cli) -> dict[str, TestRun]:
    """What the leading daemon does every minute: plan each schedule's next run."""
    clock = SystemClock()
    sync_folder(cli.engine, cli.folder, clock)
    settings = load_settings(database_url=cli.engine.url.render_as_string(hide_password=False))
    runs = RunEngine(cli.engine, settings, clock, actor="test")
    try:
        plan_schedules(runs, clock.now(), random.Random(7))
    finally:
        runs.close()
    with session_scope(cli.engine) as s:
        return {sch.key: run for run, sch in s.exec(
            select(TestRun, Schedule).join(Schedule, Schedule.id == TestRun.schedule_id)).all()}


def test_schedule_list_shows_the_window_but_never_the_drawn_moment_of_an_unannounced_test(cli: Cli) -> None:
    planned = plan(cli)
    out = ok(cli.run("schedule", "list"))
    spring = planned["spring"]
    secret = spring.fire_at
    assert secret is not None and spring.window_start is not None and secret != spring.window_start
    assert "fast-playbook:spring" in out and "unannounced" in out
    assert "(moment drawn, not shown)" in out
    # only what the playbook itself says: the month and the window, never the drawn day
    assert spring.window_start.astimezone(_tz()).strftime("%B %Y") in out
    assert spring.window_start.astimezone(_tz()).strftime("%Y-%m-%d") not in out
    for shown in (secret.strftime("%H:%M:%S"), secret.astimezone(_tz()).strftime("%H:%M:%S"), secret.isoformat()):
        assert shown not in out
    # the announced drill shows its moment
    drill = planned["drill"].fire_at
    assert drill is not None and drill.astimezone(_tz()).strftime("%Y-%m-%d 10:30:00") in out
    # and the list of runs keeps the secret too
    runs_out = ok(cli.run("runs", "list"))
    assert "(unannounced, not shown)" in runs_out
    assert secret.astimezone(_tz()).strftime("%H:%M:%S") not in runs_out


def test_schedule_list_before_anything_is_planned_shows_where_the_window_opens(cli: Cli) -> None:
    out = ok(cli.run("schedule", "list"))
    assert "window from " in out
    assert "active" in out and "announced daily drill" in out


def test_pausing_a_schedule_withdraws_its_planned_run_and_resuming_plans_again(cli: Cli) -> None:
    planned = plan(cli)
    assert ok(cli.run("schedule", "pause", "fast-playbook:spring")).strip() == "schedule fast-playbook:spring paused"
    with session_scope(cli.engine) as s:
        sch = s.exec(select(Schedule).where(Schedule.key == "spring")).one()
        assert sch.paused
        assert s.get(TestRun, planned["spring"].id).status == "aborted"
        assert s.get(TestRun, planned["drill"].id).status == "planned"
    assert "paused" in ok(cli.run("schedule", "list"))
    with session_scope(cli.engine) as s:
        before = len(s.exec(select(TestRun)).all())
    plan(cli)  # a paused schedule plans nothing
    with session_scope(cli.engine) as s:
        assert len(s.exec(select(TestRun)).all()) == before
    assert ok(cli.run("schedule", "resume", "fast-playbook:spring")).strip() == "schedule fast-playbook:spring resumed"
    with session_scope(cli.engine) as s:
        assert not s.exec(select(Schedule).where(Schedule.key == "spring")).one().paused
    plan(cli)
    with session_scope(cli.engine) as s:
        sch = s.exec(select(Schedule).where(Schedule.key == "spring")).one()
        # planned again: a fresh draw, or the withdrawn moment revived (unique on schedule + fire time)
        assert s.exec(select(TestRun).where(TestRun.schedule_id == sch.id, TestRun.status == "planned")).first()


@pytest.mark.parametrize("ref", ["no-such-playbook:spring", "fast-playbook:no-such-key", "spring"])
def test_pausing_an_unknown_schedule_exits_2_and_says_how_to_name_one(cli: Cli, ref: str) -> None:
    result = cli.run("schedule", "pause", ref)
    assert result.exit_code == 2
    assert f"error: schedule {ref!r} not found; give PLAYBOOK_ID:KEY as `commtest schedule list` shows" in result.stderr


def test_the_daemon_refuses_to_start_with_an_unknown_channel_provider(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMTEST_CHANNELS", '{"email": "pigeon"}')
    result = cli.run("daemon", "--no-web")
    assert result.exit_code == 2
    assert "error: no channel provider installed for email.pigeon; installed: " in result.stderr
    assert "email.sandbox" in result.stderr


# -- helpers ------------------------------------------------------------------------------


def _tz():  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo("Europe/Brussels")


def table_rows(out: str) -> list[list[str]]:
    """The body rows of the 'per organisation and channel' table, as cell lists."""
    section = out.split("per organisation and channel", 1)[1]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 9 and re.fullmatch(r"[A-Z]{2}-[A-Z]+", cells[0]):
            rows.append(cells)
    return rows


def test_a_coordinator_records_an_answer_received_by_radio_as_manual(cli: Cli) -> None:
    from datetime import datetime, timedelta

    from commtest.clock import UTC

    sync_folder(cli.engine, cli.folder, SystemClock())
    settings = load_settings(database_url=cli.engine.url.render_as_string(hide_password=False))
    runs = RunEngine(cli.engine, settings, SystemClock(), actor="test")
    run_id = runs.create_run("fast-playbook")
    runs.start_run(run_id)
    with session_scope(cli.engine) as s:
        ping = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "email")).first()
        ping.state, ping.sent_at = "sent", datetime.now(UTC) - timedelta(minutes=3)
        s.add(ping)
        ping_id = ping.id
    runs.close()
    out = ok(cli.run("runs", "ack", str(run_id), str(ping_id), "--how", "radio", "--by", "Duty officer (fictional)"))
    assert "recorded as manual" in out
    with session_scope(cli.engine) as s:
        got = s.get(Ping, ping_id)
        assert (got.state, got.outcome, got.ack_method, got.ack_by) == ("acked", "manual", "manual:radio", "Duty officer (fictional)")
    again = ok(cli.run("runs", "ack", str(run_id), str(ping_id), "--how", "radio"))
    assert "already acknowledged" in again


def test_recording_an_answer_for_a_ping_of_another_run_exits_2(cli: Cli) -> None:
    result = cli.run("runs", "ack", "999", "1", "--how", "radio")
    assert result.exit_code == 2
    assert "run 999 has no ping 1" in result.stderr


def test_when_a_daemon_leads_run_now_queues_the_test_for_it(cli: Cli) -> None:
    from scheduler.leader import leader_lock_for

    lock = leader_lock_for(cli.engine.url.render_as_string(hide_password=False))
    assert lock.acquire(wait=False)
    try:
        out = ok(cli.run("run", "fast-playbook", "--now", "--no-wait"))
    finally:
        lock.release()
    assert re.search(r"run \d+ queued; the daemon \(.+\) starts it within a tick", out), out
    [run] = [r for r in cli.runs() if r.trigger == "manual"]
    assert run.status == "planned" and cli.pings(run.id or 0) == []


def test_a_cli_run_that_leads_also_finishes_the_runs_other_coordinators_queued(cli: Cli) -> None:
    sync_folder(cli.engine, cli.folder, SystemClock())
    settings = load_settings(database_url=cli.engine.url.render_as_string(hide_password=False))
    runs = RunEngine(cli.engine, settings, SystemClock(), actor="colleague")
    other = runs.create_run("fast-playbook", started_by="colleague")  # queued while nobody leads
    runs.close()
    ok(cli.run("run", "fast-playbook", "--now"))
    assert {r.id: r.status for r in cli.runs() if r.trigger == "manual"} == {other: "completed", other + 1: "completed"}
