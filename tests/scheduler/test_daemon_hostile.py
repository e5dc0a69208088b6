"""The daemon leads, ticks and serves the web app whatever lies in the playbook folder
(issue 9: an alias bomb there once kept ``commtest daemon`` from leading for good)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from channels.registry import ChannelSet
from commtest.clock import FrozenClock
from commtest.db import make_engine, session_scope
from commtest.models import Playbook
from commtest.settings import load_settings
from scheduler.daemon import Daemon
from scheduler.engine import RunEngine
from tests.hostile import NESTED_RANGES, alias_bomb, nested_brackets, playbook_with_template, slow_templates_playbook
from tests.scheduler.seed import fast_playbook, seed_bulk, seed_directory, store_playbook
from tests.scheduler.test_daemon_inprocess import FakeLock, Provider, wait_until


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _playbook(engine: Engine, playbook_id: str) -> Playbook | None:
    try:
        with session_scope(engine) as s:
            return s.get(Playbook, playbook_id)
    except Exception:  # the daemon may be migrating the database right now
        return None


class DaemonProcess:
    """``commtest daemon`` in its own process on a free port, its log in a file."""

    def __init__(self, tmp_path: Path, db_url: str, folder: Path) -> None:
        self.port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMMTEST_")}
        env.update({"COMMTEST_SANDBOX": "true",  # sandbox providers on purpose (a no-op where the setting is unknown)
                    "COMMTEST_DATABASE_URL": db_url, "COMMTEST_PLAYBOOK_DIR": str(folder),
                    "COMMTEST_WEB_PORT": str(self.port), "COMMTEST_PUBLIC_BASE_URL": f"http://127.0.0.1:{self.port}",
                    "COMMTEST_TICK_SECONDS": "0.1", "COMMTEST_LOG_LEVEL": "INFO"})
        self.log = tmp_path / "daemon.log"
        self.started = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "commtest", "daemon"], env=env, stdout=out,
                                         stderr=subprocess.STDOUT, cwd=tmp_path)

    def text(self) -> str:
        return self.log.read_text()

    def leading(self) -> bool:
        return b"leading: ticking" in self.log.read_bytes()

    def serving(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def seconds_to_lead_and_serve(self, within: float = 30) -> float:
        end = self.started + within
        while time.monotonic() < end and not (self.leading() and self.serving()):
            assert self.proc.poll() is None, self.text()
            time.sleep(0.1)
        assert self.leading() and self.serving(), self.text()
        return time.monotonic() - self.started

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_a_daemon_with_an_alias_bomb_in_its_playbook_folder_leads_and_serves_promptly(tmp_path: Path, db_url: str) -> None:
    engine = make_engine(db_url)
    orgs = seed_bulk(engine, organisations=2, per_org=1)
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "fast.yaml").write_text(fast_playbook(orgs))
    (folder / "bomb.yaml").write_text(alias_bomb())
    (folder / "nest.yaml").write_text(nested_brackets())
    (folder / "loops.yaml").write_text(playbook_with_template(NESTED_RANGES).replace("id: drill", "id: loops"))
    daemon = DaemonProcess(tmp_path, db_url, folder)
    try:
        took = daemon.seconds_to_lead_and_serve()
        assert took < 15, f"leading and serving after {took:.1f} s (a Python start included)\n{daemon.text()}"
        # The good playbook is loaded; each hostile one is reported and skipped.
        end = daemon.started + 30
        while time.monotonic() < end and (_playbook(engine, "fast-playbook") is None
                                          or _playbook(engine, "bomb") is None):
            time.sleep(0.1)
        good, bomb, loops = (_playbook(engine, i) for i in ("fast-playbook", "bomb", "loops"))
        assert good is not None and good.current_revision_id is not None
        assert bomb is not None and bomb.current_revision_id is None and "YAML aliases" in (bomb.last_error or "")
        assert loops is not None and "range() of 100,000 numbers" in (loops.last_error or "")
        text = daemon.text()
        assert "bomb.yaml is invalid; its last good revision stays in use" in text
        assert "Traceback" not in text
        assert daemon.stop() == 0
    finally:
        daemon.kill()
        engine.dispose()


def test_a_daemon_whose_playbook_folder_is_slow_to_read_leads_and_serves_within_seconds(tmp_path: Path,
                                                                                        db_url: str) -> None:
    """Six files of four templates that each spend their whole render budget: about 4 s a
    file, 25 s in all, each bounded. The daemon does not read them all before it leads."""
    engine = make_engine(db_url)
    orgs = seed_bulk(engine, organisations=2, per_org=1)
    folder = tmp_path / "playbooks"
    folder.mkdir()
    (folder / "fast.yaml").write_text(fast_playbook(orgs))
    for i in range(6):
        (folder / f"slow-{i}.yaml").write_text(slow_templates_playbook(f"slow-{i}"))
    daemon = DaemonProcess(tmp_path, db_url, folder)
    try:
        took = daemon.seconds_to_lead_and_serve()
        assert took < 10, f"leading and serving after {took:.1f} s (a Python start included)\n{daemon.text()}"
        # The leader reads the folder in its housekeeping meanwhile: the good playbook is there.
        end = time.monotonic() + 30
        while time.monotonic() < end and _playbook(engine, "fast-playbook") is None:
            time.sleep(0.1)
        good = _playbook(engine, "fast-playbook")
        assert good is not None and good.current_revision_id is not None
        assert daemon.stop() == 0
        assert "Traceback" not in daemon.text()
    finally:
        daemon.kill()
        engine.dispose()


def test_a_slow_playbook_sync_does_not_keep_the_leader_from_sending(engine: Engine, clock: FrozenClock) -> None:
    seed_directory(engine)
    store_playbook(engine)
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), tick_seconds=0.05, sandbox=True,
                             dispatch_workers=2)
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, {}), actor="test")
    try:
        run_id = runs.create_run("test-playbook", started_by="test")
        runs.start_run(run_id)
    finally:
        runs.close()
    syncing, release = threading.Event(), threading.Event()

    def stuck_sync() -> None:  # as a sync stuck on a hostile file would be, were it unbounded
        syncing.set()
        release.wait(10)

    email, voice = Provider("email"), Provider("voice")
    channels = ChannelSet(settings, clock, {"email": email, "voice": voice})  # type: ignore[dict-item]
    daemon = Daemon(settings, engine, clock, channels=channels, lock=FakeLock(), sync_playbooks=stuck_sync)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_until(syncing.is_set, "the sync to start")
        wait_until(daemon.is_leader.is_set, "the daemon to lead while the sync is stuck")
        wait_until(lambda: len(email.calls) == 2 and len(voice.calls) == 2, "the run's pings to go out")
        assert not release.is_set()
    finally:
        release.set()
        daemon.stop()
        thread.join(10)
    assert not thread.is_alive()


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("COMMTEST_") and key != "COMMTEST_TEST_POSTGRES_URL":
            monkeypatch.delenv(key, raising=False)
