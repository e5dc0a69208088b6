"""Real or visibly simulated, never silently simulated; a manual check waits for a person; a
closed run stays closed (issue: evidence a reviewer can sign)."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxRecord, SandboxScript
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.errors import ConfigError
from commtest.models import Endpoint, Event, Ping, RunStatus, TestRun
from commtest.settings import load_settings
from scheduler.engine import RunEngine
from tests.scheduler.seed import fast_playbook, seed_directory, store_playbook

REPO = Path(__file__).resolve().parents[2]


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


@pytest.fixture
def real_email_only(cli_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A real e-mail provider, no voice or SMS provider, and no sandbox."""
    monkeypatch.delenv("COMMTEST_SANDBOX", raising=False)
    monkeypatch.setenv("COMMTEST_CHANNELS", '{"email": "smtp"}')
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "fast.yaml").write_text(fast_playbook(["XA-ONE", "XB-TWO"], deadline="5s"), encoding="utf-8")
    monkeypatch.setenv("COMMTEST_PLAYBOOK_DIR", str(folder))
    return folder


def test_a_run_whose_playbook_needs_an_unconfigured_kind_is_refused_naming_it(run_cli, real_email_only, engine) -> None:  # type: ignore[no-untyped-def]
    seed_directory(engine)
    result = run_cli("run", "fast-playbook", "--now")
    assert result.exit_code == 2
    assert "needs 'voice' (step 'voice')" in result.stderr and "COMMTEST_CHANNELS" in result.stderr
    assert "COMMTEST_SANDBOX=true" in result.stderr and "nothing was started" in result.stderr
    with session_scope(engine) as s:
        assert s.exec(select(TestRun)).all() == []


def test_a_dry_run_needs_no_provider_and_lists_the_kinds_not_configured(run_cli, real_email_only, engine) -> None:  # type: ignore[no-untyped-def]
    seed_directory(engine)
    out = ok(run_cli("run", "fast-playbook", "--now", "--dry-run"))
    assert "4 ping(s) would be sent now" in out
    assert "voice: not configured" in out and "sms: not configured" in out and "email: not configured" not in out


def test_check_config_says_of_each_kind_real_sandbox_or_not_configured(run_cli, cli_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("COMMTEST_CHANNELS", '{"email": "smtp"}')
    out = ok(run_cli("check-config"))
    assert "email   real (smtp)" in out and "voice   sandbox" in out and "SIMULATED" in out
    monkeypatch.delenv("COMMTEST_SANDBOX")
    out = ok(run_cli("check-config"))
    assert "voice   not configured" in out and "manual  real (coordinator)" in out


def test_the_daemon_refuses_to_start_while_a_scheduled_playbook_needs_an_unconfigured_kind(db_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "fast.yaml").write_text(fast_playbook(["XA-ONE"], deadline="5s") + (
        "schedules:\n  - key: drill\n    cron: \"30 10 * * *\"\n    announced: true\n"), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMTEST_")}
    env.update(COMMTEST_DATABASE_URL=db_url, COMMTEST_PLAYBOOK_DIR=str(folder), COMMTEST_CHANNELS='{"email": "smtp"}')
    proc = subprocess.run([sys.executable, "-m", "commtest", "daemon", "--no-web"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "needs 'voice'" in proc.stderr and "the daemon does not start" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_daemon_in_sandbox_mode_marks_every_figure_of_its_run_simulated(engine: Engine, run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """COMMTEST_SANDBOX=true, no provider named: the daemon's own channel set answers for the
    officers everywhere, and ``runs show`` and the test report say so of every figure."""
    import threading
    import time

    from commtest.clock import SystemClock
    from reports.render import render_html
    from reports.test_report import build_test_report
    from scheduler.daemon import Daemon
    from tests.scheduler.test_daemon_inprocess import FakeLock

    seed_directory(engine)
    store_playbook(engine, fast_playbook(["XA-ONE", "XB-TWO"], deadline="5s"), "fast-playbook")
    script = tmp_path / "script.yaml"
    script.write_text("default: {behaviour: ack, after: 1s, by: Duty Officer Example}\n", encoding="utf-8")
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), sandbox=True,
                             sandbox_script=script, tick_seconds=0.05, dispatch_workers=2)
    clock = SystemClock()
    runs = RunEngine(engine, settings, clock, actor="test")
    try:
        run_id = runs.create_run("fast-playbook", started_by="test")
        runs.start_run(run_id)
    finally:
        runs.close()
    daemon = Daemon(settings, engine, clock, lock=FakeLock())  # its own channels, from the settings
    thread = threading.Thread(target=daemon.run, name="sandbox-daemon", daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            with session_scope(engine) as s:
                if s.get(TestRun, run_id).status == RunStatus.completed.value:  # type: ignore[union-attr]
                    break
            time.sleep(0.1)
    finally:
        daemon.stop()
        thread.join(15)
    assert not thread.is_alive()
    with session_scope(engine) as s:
        assert s.get(TestRun, run_id).status == RunStatus.completed.value  # type: ignore[union-attr]
        pings = s.exec(select(Ping).where(Ping.run_id == run_id)).all()
    assert pings and all(p.simulated and p.provider == "sandbox" for p in pings if p.state != "cancelled")

    shown = ok(run_cli("runs", "show", str(run_id), "--pings"))
    assert "SIMULATED — not evidence" in shown
    checks, attempts = shown.split("┃ ping ┃", 1)
    table = [line for line in checks.splitlines() if line.startswith("│ X")]
    assert len(table) == 4 and all("SIMULATED" in line for line in table), shown  # organisation × channel
    assert attempts.count("(SIMULATED)") == len(pings), shown  # each attempt (its cell wraps)

    report = build_test_report(engine, run_id)
    assert report.simulated and report.summary.simulated == report.summary.checks > 0
    assert report.matrix and all(cell.simulated for cell in report.matrix)
    assert all(check.simulated for check in report.checks) and all(a.simulated for a in report.attempts)
    html = render_html(report, "en")
    assert "SIMULATED — not evidence" in html and html.count(">SIMULATED<") >= len(report.matrix) + len(report.checks)


def test_naming_a_sandbox_without_the_sandbox_setting_is_refused_at_once(monkeypatch: pytest.MonkeyPatch,
                                                                        clock: FrozenClock) -> None:
    monkeypatch.delenv("COMMTEST_SANDBOX")
    with pytest.raises(ConfigError, match="COMMTEST_SANDBOX=true"):
        load_settings(channels={"email": "sandbox"})
    settings = load_settings(channels={"email": "smtp"})
    with pytest.raises(ConfigError, match="simulated"):
        ChannelSet(settings, clock, {"voice": SandboxChannel("voice", clock)})


# --- the engine -------------------------------------------------------------------------------

MANUAL_PLAYBOOK = """
id: radio-check
title: Radio check
owner: XA-COORD
participants:
  - organisation: XA-ONE
    fields: [crisis-desk]
steps:
  - id: radio
    channel: manual
    template: radio
    ack_deadline: 10m
templates:
  radio:
    en: {body: "Call the duty desk on the radio net and note who answers."}
"""


@pytest.fixture
def world(engine: Engine, clock: FrozenClock) -> Engine:
    ids = seed_directory(engine)
    store_playbook(engine)
    with session_scope(engine) as s:
        s.add(Endpoint(contact_point_id=ids["XA-ONE"], kind="manual", address="TETRA XA-ONE-1"))
    store_playbook(engine, MANUAL_PLAYBOOK, "radio-check")
    return engine


def sandbox_engine(engine: Engine, clock: FrozenClock, rule: Rule) -> RunEngine:
    settings = load_settings(database_url=str(engine.url), dispatch_workers=2, sandbox=True)
    script = SandboxScript(default=rule)
    record = SandboxRecord()
    chans = {k: SandboxChannel(k, clock, script, record) for k in ("email", "voice", "sms")}
    return RunEngine(engine, settings, clock, ChannelSet(settings, clock, chans), actor="test")


def run_until_closed(eng: RunEngine, clock: FrozenClock, run_id: int) -> None:
    for _ in range(400):
        eng.tick()
        if eng.is_settled(run_id):
            return
        clock.advance(30)
    raise AssertionError("run did not close")


def test_every_ping_a_sandbox_carried_is_marked_simulated_and_proves_no_endpoint(world: Engine, clock: FrozenClock) -> None:
    eng = sandbox_engine(world, clock, Rule("ack", timedelta(seconds=30)))
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    run_until_closed(eng, clock, run_id)
    with session_scope(world) as s:
        pings = s.exec(select(Ping).where(Ping.run_id == run_id)).all()
        assert pings and all(p.simulated for p in pings) and {p.outcome for p in pings} == {"acked"}
        sent = s.exec(select(Event).where(Event.run_id == run_id, Event.kind == "ping.sent")).all()
        assert all(e.data["simulated"] is True for e in sent)
        assert all(e.verified_at is None for e in s.exec(select(Endpoint)).all())  # nothing proven
        assert s.exec(select(Event).where(Event.kind == "endpoint.verified")).all() == []
    eng.close()


def test_a_manual_check_is_never_acknowledged_without_a_record_and_ends_no_record(world: Engine, clock: FrozenClock) -> None:
    eng = sandbox_engine(world, clock, Rule("ack", timedelta(seconds=1)))  # the sandbox answers everything else
    run_id = eng.create_run("radio-check")
    eng.start_run(run_id)
    run_until_closed(eng, clock, run_id)
    with session_scope(world) as s:
        [ping] = s.exec(select(Ping).where(Ping.run_id == run_id)).all()
        assert (ping.channel, ping.provider, ping.outcome, ping.acked_at) == ("manual", "coordinator", "no_record", None)
    eng.close()


def test_a_coordinators_record_answers_a_manual_check_with_time_answerer_and_author(world: Engine, clock: FrozenClock) -> None:
    from scheduler.records import acknowledge

    eng = sandbox_engine(world, clock, Rule("never"))
    run_id = eng.create_run("radio-check")
    eng.start_run(run_id)
    eng.tick()
    clock.advance(120)
    with session_scope(world, durable=True) as s:
        [ping] = s.exec(select(Ping).where(Ping.run_id == run_id)).all()
        result = acknowledge(s, ping, clock.now(), method="manual:record", actor="cli:cora", by="Duty officer XA",
                             note="TETRA talk group 7")
    assert result.status == "acked"
    run_until_closed(eng, clock, run_id)
    with session_scope(world) as s:
        acked = s.exec(select(Event).where(Event.run_id == run_id, Event.kind == "ping.acked")).one()
        assert (acked.actor, acked.data["by"], acked.data["note"]) == ("cli:cora", "Duty officer XA", "TETRA talk group 7")
        [ping] = s.exec(select(Ping).where(Ping.run_id == run_id)).all()
        assert ping.outcome == "manual"
    eng.close()


def test_an_abort_cancels_what_was_never_sent_ends_what_waited_aborted_and_later_answers_change_nothing(
        world: Engine, clock: FrozenClock) -> None:
    from scheduler.records import acknowledge

    eng = sandbox_engine(world, clock, Rule("never"))
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()  # e-mail and voice sent; nothing else due
    eng.abort_run(run_id, by="cora", reason="exercise called off")
    with session_scope(world) as s:
        pings = s.exec(select(Ping).where(Ping.run_id == run_id)).all()
        assert {p.outcome for p in pings} == {"aborted"}
        run = s.get(TestRun, run_id)
        assert run is not None and run.status == RunStatus.aborted.value
    with session_scope(world, durable=True) as s:
        ping = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "email")).first()
        assert ping is not None
        result = acknowledge(s, ping, clock.now() + timedelta(minutes=1), method="link", actor="web")
    assert (result.status, result.run_status) == ("after_close", "aborted")
    from reports.test_report import build_test_report

    report = build_test_report(world, run_id)
    assert {m.verdict for m in report.matrix} == {"aborted"}
    assert [a.ping_id for a in report.answers_after_close] == [ping.id]
    eng.close()


def test_a_simulated_providers_refusal_marks_the_attempt_simulated_and_leaves_the_directory_alone(
        world: Engine, clock: FrozenClock) -> None:
    eng = sandbox_engine(world, clock, Rule("invalid"))  # the sandbox refuses every address as invalid
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    with session_scope(world) as s:
        failed = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.outcome == "invalid_endpoint")).all()
        assert failed and all(p.simulated for p in failed)
        assert {e.status for e in s.exec(select(Endpoint)).all()} == {"active"}
        assert s.exec(select(Event).where(Event.kind == "endpoint.status")).all() == []
    eng.close()
