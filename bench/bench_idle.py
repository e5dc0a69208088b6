"""The daemon at rest: memory and CPU of `commtest daemon` leading with nothing to do.

Starts the real daemon (scheduler leader, web app, sandbox providers) on a copy of a database
(``--database``: by default the year of history bench_monthly_report.py generates, when it is
there, else a fresh one), waits until it leads, then samples its resident memory and CPU time
from /proc for ``--seconds``. A daemon that scans its history every tick shows here.

    python bench/bench_idle.py [--seconds 30] [--database var/bench/monthly.db]

Prints, last: RESULT rss_mb=… cpu_percent=… pings=… (targets: under 120 MB and 0.5 %)
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _rss_mb(pid: int) -> float:
    """The daemon's resident memory, its child processes' included (a writer process of the web
    app, while there is one)."""
    total = 0.0
    for one in (pid, *_children(pid)):
        try:
            for line in Path(f"/proc/{one}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except FileNotFoundError:  # ended meanwhile
            continue
    return total


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--database", type=Path, default=REPO / "var" / "bench" / "monthly.db")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-idle-"))
    db = tmp / "commtest.db"
    if args.database.exists():
        src = sqlite3.connect(args.database)
        dst = sqlite3.connect(db)
        src.backup(dst)  # a consistent copy, WAL included
        src.close()
        dst.close()
    with sqlite3.connect(db) as c:
        try:
            pings = c.execute("select count(*) from ping").fetchone()[0]
        except sqlite3.OperationalError:
            pings = 0
    port = _port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMMTEST_")}
    env.update({"COMMTEST_SANDBOX": "true", "COMMTEST_DATABASE_URL": f"sqlite:///{db}", "COMMTEST_WEB_PORT": str(port),
                "COMMTEST_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "COMMTEST_PLAYBOOK_DIR": str(tmp / "playbooks"),
                "COMMTEST_LOG_LEVEL": "INFO"})
    (tmp / "playbooks").mkdir()
    log = tmp / "daemon.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "commtest", "daemon"], env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=tmp)
    try:
        for _ in range(600):
            if b"leading: ticking" in log.read_bytes():
                break
            if proc.poll() is not None:
                raise SystemExit(log.read_text())
            time.sleep(0.1)
        else:
            raise SystemExit("the daemon did not lead within a minute:\n" + log.read_text())
        time.sleep(5)  # the first housekeeping and ticks
        cpu0, t0 = _cpu_seconds(proc.pid), time.monotonic()
        rss = []
        while time.monotonic() - t0 < args.seconds:
            time.sleep(1)
            rss.append(_rss_mb(proc.pid))
        cpu = (_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"idle daemon on a database of {pings:,} pings, over {args.seconds:.0f} s: RSS max {max(rss):.0f} MB, "
          f"CPU {cpu:.2f} %")
    print(f"RESULT rss_mb={max(rss):.0f} cpu_percent={cpu:.2f} pings={pings} rss_target_mb=120 cpu_target_percent=0.5")


if __name__ == "__main__":
    main()
