"""Timer precision: how late deadline and escalation decisions are while a big run goes on.

A run of N contact points x 3 channels (default 1,000 x 3) where nobody answers: every
ping expires at its deadline, and every call escalates to an SMS. The real daemon drives
it (leader lock, APScheduler ticking every ``--tick`` seconds). Lateness is measured
from the event log: a deadline decision's lateness is ``settled_at - deadline_at``; an
escalation's is the escalated ping's ``due_at - deadline_at`` of the silent call.

    python bench/bench_timers.py [--contact-points 1000] [--deadline 30s] [--tick 0.2]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlmodel import select  # noqa: E402

from bench._world import fresh_engine, percentile, playbook, seed  # noqa: E402
from channels.registry import ChannelSet  # noqa: E402
from channels.sandbox import KINDS_SANDBOX, Rule, SandboxChannel, SandboxRecord, SandboxScript  # noqa: E402
from commtest.clock import SystemClock  # noqa: E402
from commtest.db import session_scope  # noqa: E402
from commtest.models import Ping, TestRun  # noqa: E402
from commtest.settings import load_settings  # noqa: E402
from scheduler.daemon import Daemon  # noqa: E402
from scheduler.engine import RunEngine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contact-points", type=int, default=1000)
    ap.add_argument("--deadline", default="30s")
    ap.add_argument("--tick", type=float, default=0.2)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()

    engine = fresh_engine(args.database_url, Path("var/bench/timers"))
    seed(engine, args.contact_points, playbook(deadline=args.deadline, escalate=True))
    url = engine.url.render_as_string(hide_password=False)
    settings = load_settings(database_url=url, tick_seconds=args.tick, sandbox=True)  # the sandbox answers
    clock = SystemClock()
    script = SandboxScript(default=Rule("never"))
    channels = ChannelSet(settings, clock, {k: SandboxChannel(k, clock, script, SandboxRecord()) for k in KINDS_SANDBOX})
    daemon = Daemon(settings, engine, clock, channels=channels)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    daemon.is_leader.wait(30)
    q = RunEngine(engine, settings, clock, actor="bench")
    run_id = q.create_run("bench")
    q.close()
    t0 = time.perf_counter()
    while True:
        with session_scope(engine) as s:
            status = s.get(TestRun, run_id).status
        if status == "completed":
            break
        if time.perf_counter() - t0 > 900:
            raise SystemExit("run did not complete in 15 minutes")
        time.sleep(0.5)
    daemon.stop()
    thread.join(60)
    with session_scope(engine) as s:
        pings = s.exec(select(Ping).where(Ping.run_id == run_id)).all()
    by_id = {p.id: p for p in pings}
    deadline_late = [(p.settled_at - p.deadline_at).total_seconds()
                     for p in pings if p.outcome == "delivered_no_ack" and p.deadline_at and p.settled_at]
    escalation_late = [(p.due_at - by_id[p.escalated_from_id].deadline_at).total_seconds()
                       for p in pings if p.escalated_from_id and by_id[p.escalated_from_id].deadline_at]
    print(f"database: {engine.dialect.name}; tick every {args.tick}s; {len(pings)} pings; "
          f"run took {time.perf_counter() - t0:.1f} s")
    for name, values in (("deadline decisions", deadline_late), ("escalation decisions", escalation_late)):
        print(f"{name}: n={len(values)} lateness p50={percentile(values, 50) * 1000:.0f} ms "
              f"p99={percentile(values, 99) * 1000:.0f} ms max={max(values) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
