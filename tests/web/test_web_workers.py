"""`COMMTEST_WEB_WORKERS=2`: the daemon serves the web app from two worker processes beside the
scheduler; a form one worker signed is accepted by the other, and SIGTERM stops them all."""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import sqlalchemy as sa

from channels.registry import ChannelSet
from commtest.clock import SystemClock
from commtest.db import make_engine
from commtest.models import Ping
from commtest.settings import load_settings
from scheduler.engine import RunEngine
from tests.scheduler.seed import seed_directory, store_playbook


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sent_tokens(db_url: str) -> list[str]:
    """A running run whose attempts were sent, each with a known acknowledgement token."""
    engine = make_engine(db_url)
    seed_directory(engine)
    store_playbook(engine)
    settings = load_settings(database_url=db_url)
    runs = RunEngine(engine, settings, SystemClock(), ChannelSet(settings, SystemClock(), {}), actor="test")
    run_id = runs.create_run("test-playbook")
    runs.start_run(run_id)
    runs.close()
    now = datetime.now(timezone.utc)
    table = Ping.__table__  # type: ignore[attr-defined]
    with engine.begin() as c:
        ids = c.execute(sa.select(table.c.id).where(table.c.run_id == run_id, table.c.channel == "email")).scalars().all()
        tokens = [secrets.token_urlsafe(32) for _ in ids]
        for ping_id, token in zip(ids, tokens):
            c.execute(table.update().where(table.c.id == ping_id).values(
                state="sent", sent_at=now, dispatching_at=now, deadline_at=now + timedelta(hours=1),
                token_hash=hashlib.sha256(token.encode()).hexdigest(), token_expires_at=now + timedelta(days=1)))
    engine.dispose()
    return tokens


def test_two_web_workers_accept_each_others_forms_and_stop_with_the_daemon(db_url: str, tmp_path: Path) -> None:
    tokens = _sent_tokens(db_url)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMTEST_")}
    env.update({"COMMTEST_SANDBOX": "true", "COMMTEST_DATABASE_URL": db_url, "COMMTEST_WEB_PORT": str(port),
                "COMMTEST_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "COMMTEST_WEB_WORKERS": "2",
                "COMMTEST_TICK_SECONDS": "0.5"})  # no COMMTEST_SECRET_KEY: the daemon draws one for its workers
    log = tmp_path / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "commtest", "daemon"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        else:
            raise AssertionError(log.read_text())
        assert b"2 worker processes" in log.read_bytes()
        for token in tokens:
            # A new connection for each request: the kernel hands them to either worker.
            page = httpx.get(f"http://127.0.0.1:{port}/ack/{token}", headers={"connection": "close"}, timeout=5)
            assert page.status_code == 200
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None, page.text
            done = httpx.post(f"http://127.0.0.1:{port}/ack/{token}", data={"csrf": csrf.group(1)},
                              headers={"connection": "close"}, timeout=5)
            assert done.status_code == 200, done.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, log.read_text()
        with socket.socket() as s:  # the workers are gone with the daemon: nobody listens on the port
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the closed connections may linger
            s.bind(("127.0.0.1", port))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
