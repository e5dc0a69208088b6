"""Dispatch throughput: a run of 1,000 contact points x 3 channels against sandbox providers.

Prints the time from run start to every ping handed to its provider, and pings per second.
Each ping is marked ``dispatching`` in a durable (synchronous=FULL on SQLite) transaction
before its provider is called, exactly as in production.

    python bench/bench_dispatch.py [--contact-points 1000] [--workers 8] [--database-url URL]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._world import fresh_engine, playbook, seed  # noqa: E402
from channels.registry import ChannelSet  # noqa: E402
from channels.sandbox import KINDS_SANDBOX, Rule, SandboxChannel, SandboxRecord, SandboxScript  # noqa: E402
from commtest.clock import SystemClock  # noqa: E402
from commtest.settings import load_settings  # noqa: E402
from scheduler.engine import RunEngine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contact-points", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file under var/bench/dispatch")
    args = ap.parse_args()

    engine = fresh_engine(args.database_url, Path("var/bench/dispatch"))
    seed(engine, args.contact_points, playbook())
    # The sandbox answers for the officers: allowed only when the settings say so.
    settings = load_settings(database_url=str(engine.url.render_as_string(hide_password=False)),
                             dispatch_workers=args.workers, sandbox=True)
    clock = SystemClock()
    script = SandboxScript(default=Rule("never"))
    record = SandboxRecord()
    channels = ChannelSet(settings, clock, {k: SandboxChannel(k, clock, script, record) for k in KINDS_SANDBOX})
    runs = RunEngine(engine, settings, clock, channels, actor="bench")

    t0 = time.perf_counter()
    run_id = runs.create_run("bench")
    planned = runs.start_run(run_id)
    t_planned = time.perf_counter()
    sent = 0
    while True:
        n = runs.dispatch_due()
        sent += n
        if n == 0:
            break
    t_done = time.perf_counter()
    runs.close()
    assert len(record.sent) == planned == sent, (len(record.sent), planned, sent)
    print(f"database: {engine.dialect.name}; workers: {args.workers}")
    print(f"pings planned: {planned} ({args.contact_points} contact points x 3 channels)")
    print(f"planning the run: {t_planned - t0:.2f} s")
    print(f"run start -> every ping handed to its provider: {t_done - t0:.2f} s")
    print(f"dispatch rate: {sent / (t_done - t_planned):.0f} pings/s (dispatch phase), "
          f"{sent / (t_done - t0):.0f} pings/s (from run start)")


if __name__ == "__main__":
    main()
