"""Real daemon processes: kill -9 at several points, and two daemons on one database.

The sandbox providers append every message they accept to a JSON-lines file (fsync'd
before ``send`` returns); these tests compare that record with the database.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.sandbox import SandboxRecord
from commtest.clock import SystemClock
from commtest.db import make_engine, session_scope
from commtest.models import Event, Ping, TestRun
from commtest.settings import load_settings
from scheduler.engine import RunEngine
from tests.scheduler.seed import fast_playbook, seed_bulk

SCRIPT = """
default: {behaviour: ack, after: 1s, send_delay: 0.02}
rules:
  - {match: "desk1@*", behaviour: never, send_delay: 0.02}
  - {match: "+3225*", attempt: 1, behaviour: voicemail, after: 1s, send_delay: 0.02}
  - {match: "desk3@*", behaviour: fail, attempt: 1}
"""


# For the kill test: the provider hangs on the very first message, so the first kill
# certainly catches a ping between "dispatching" and the provider's answer.
HANG_FIRST = SCRIPT.replace("rules:\n", 'rules:\n  - {match: "desk0@bulk0.example", attempt: 1, behaviour: ack, after: 1s, send_delay: 60}\n', 1)


class World:
    def __init__(self, tmp: Path, db_url: str, script: str = SCRIPT) -> None:
        self.tmp = tmp
        self.db_url = db_url
        self.log = tmp / "sandbox.jsonl"
        self.playbooks = tmp / "playbooks"
        self.playbooks.mkdir()
        (tmp / "script.yaml").write_text(script)
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMMTEST_")}
        env.update({
            "COMMTEST_SANDBOX": "true",
            "COMMTEST_DATABASE_URL": self.db_url,
            "COMMTEST_PLAYBOOK_DIR": str(self.playbooks),
            "COMMTEST_SANDBOX_SCRIPT": str(self.tmp / "script.yaml"),
            "COMMTEST_SANDBOX_LOG": str(self.log),
            "COMMTEST_TICK_SECONDS": "0.1",
            "COMMTEST_DISPATCH_WORKERS": "2",
            "COMMTEST_LOG_LEVEL": "INFO",
        })
        return env

    def start_daemon(self, name: str) -> subprocess.Popen[bytes]:
        out = open(self.tmp / f"{name}.log", "wb")
        p = subprocess.Popen([sys.executable, "-m", "commtest", "daemon", "--no-web"], env=self.env(),
                             stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append(p)
        return p

    def sent(self) -> list[dict]:
        return SandboxRecord.read_log(self.log)

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.05)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp.glob("*.log"))
        raise AssertionError(f"timed out waiting for {what}\n{logs}")

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path, db_url: str) -> Iterator[tuple[World, Engine]]:
    w = World(tmp_path, db_url, getattr(request, "param", SCRIPT))
    engine = make_engine(db_url)
    orgs = seed_bulk(engine, organisations=4, per_org=6)
    (w.playbooks / "fast.yaml").write_text(fast_playbook(orgs))
    yield w, engine
    w.stop_all()
    engine.dispose()


def queue_run(engine: Engine, db_url: str) -> int:
    settings = load_settings(database_url=db_url)
    runs = RunEngine(engine, settings, SystemClock(), actor="test")
    try:
        from playbooks.store import sync_folder  # the daemon syncs too; make sure the playbook exists now

        return runs.create_run("fast-playbook", started_by="test")
    finally:
        runs.close()


def run_status(engine: Engine, run_id: int) -> str:
    with session_scope(engine) as s:
        return s.get(TestRun, run_id).status


def check_invariants(engine: Engine, w: World, run_id: int) -> dict[str, int]:
    sent = [e for e in w.sent() if e["run_id"] == run_id]
    with session_scope(engine) as s:
        pings = {p.id: p for p in s.exec(select(Ping).where(Ping.run_id == run_id)).all()}
        settled = {e.ping_id for e in s.exec(select(Event).where(Event.run_id == run_id, Event.kind == "ping.settled")).all()}
    # 1. nobody was pinged twice for the same (run, contact point, channel, attempt)
    keys = Counter((pings[e["ping_id"]].contact_point_id, e["channel"], e["attempt"]) for e in sent)
    assert [k for k, n in keys.items() if n > 1] == []
    assert [k for k, n in Counter(e["ping_id"] for e in sent).items() if n > 1] == []
    # 2. nothing the provider accepted is missing from the record: sent, or unknown (crash mid-call)
    for e in sent:
        assert pings[e["ping_id"]].state in ("sent", "delivered", "acked", "expired", "failed", "unknown"), e
    # 3. everything the database says was sent, the provider really got
    assert {p.id for p in pings.values() if p.sent_at is not None} <= {e["ping_id"] for e in sent}
    # 4. every ping ended with an outcome in the log, and nothing is left open
    assert set(pings) == settled
    assert {p.state for p in pings.values()} <= {"acked", "expired", "failed", "unknown", "cancelled"}
    return Counter(p.state for p in pings.values())


@pytest.mark.parametrize("world", [HANG_FIRST], indirect=True)
def test_kill_9_at_several_points_never_sends_twice_and_loses_nothing(world: tuple[World, Engine]) -> None:
    w, engine = world
    d = w.start_daemon("d1")
    w.wait_for(lambda: _has_playbook(engine), what="the daemon to load the playbook")
    run_id = queue_run(engine, w.db_url)
    total_initial = 4 * 6 * 2
    # kill points: right after the first message, in the middle of the first wave, and
    # later while retries and escalations are being sent.
    for i, point in enumerate((1, total_initial // 2, total_initial + 10)):
        w.wait_for(lambda: len(w.sent()) >= point, what=f"{point} messages sent")
        d.send_signal(signal.SIGKILL)
        d.wait(10)
        d = w.start_daemon(f"d{i + 2}")
    w.wait_for(lambda: run_status(engine, run_id) == "completed", timeout=120, what="the run to complete")
    d.send_signal(signal.SIGTERM)
    assert d.wait(30) == 0
    states = check_invariants(engine, w, run_id)
    assert states["acked"] > 0 and states["expired"] > 0
    # The message whose provider call the first kill interrupted is "unknown" and was never resent.
    with session_scope(engine) as s:
        hung = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.address == "desk0@bulk0.example")).all()
    assert [(p.attempt, p.state) for p in hung] == [(1, "unknown")]
    assert "desk0@bulk0.example" not in {e["address"] for e in w.sent()}


def test_two_daemons_on_one_database_only_the_leader_dispatches(world: tuple[World, Engine]) -> None:
    w, engine = world
    a = w.start_daemon("a")
    w.wait_for(lambda: _has_playbook(engine), what="the first daemon to lead")
    b = w.start_daemon("b")
    w.wait_for(lambda: b"standby" in (w.tmp / "b.log").read_bytes(), what="the second daemon to wait as standby")
    run_id = queue_run(engine, w.db_url)
    w.wait_for(lambda: len(w.sent()) >= 20, what="20 messages")
    assert {e["pid"] for e in w.sent()} == {a.pid}
    # the leader dies: the standby takes over and finishes the run, sending nothing twice
    a.send_signal(signal.SIGKILL)
    a.wait(10)
    w.wait_for(lambda: run_status(engine, run_id) == "completed", timeout=120, what="the standby to finish the run")
    assert {e["pid"] for e in w.sent()} <= {a.pid, b.pid}
    assert b.pid in {e["pid"] for e in w.sent()}
    check_invariants(engine, w, run_id)
    b.send_signal(signal.SIGTERM)
    assert b.wait(30) == 0


def _has_playbook(engine: Engine) -> bool:
    from commtest.models import Playbook

    try:
        with session_scope(engine) as s:
            pb = s.get(Playbook, "fast-playbook")
            return pb is not None and pb.current_revision_id is not None
    except Exception:
        return False
