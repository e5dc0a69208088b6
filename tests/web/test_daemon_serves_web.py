"""`commtest daemon` serves the web app next to the scheduler and stops cleanly on SIGTERM."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_daemon_serves_healthz_and_exits_0_on_sigterm(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMTEST_")}
    env.update({"COMMTEST_SANDBOX": "true", "COMMTEST_DATABASE_URL": db_url, "COMMTEST_WEB_PORT": str(port),
                "COMMTEST_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "COMMTEST_TICK_SECONDS": "0.2"})
    log = open(tmp_path / "daemon.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "commtest", "daemon"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        body = None
        for _ in range(150):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                if r.status_code == 200:
                    body = r.json()
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        assert body is not None, (tmp_path / "daemon.log").read_text()
        assert body["status"] == "ok"
        assert "strict-origin" in r.headers.get("referrer-policy", "") or r.headers.get("referrer-policy") == "no-referrer"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "daemon.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
