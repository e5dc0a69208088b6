"""Dispatch throughput: a run of 1,000 contact points x 3 channels against sandbox providers.

Prints the time from run start to every ping handed to its provider, and pings per second: the
median of ``--rounds`` runs, each on a fresh database (this shared machine's speed swings by a
third from one minute to the next; the slowest and fastest round are printed too), the CPU each
attempt cost this process and the rest of the machine (on PostgreSQL, the database), and the time
of a fixed reference workload: how fast the machine ran meanwhile.
Each ping is marked ``dispatching`` in a durable (synchronous=FULL on SQLite) transaction
before its provider is called, exactly as in production.

    python bench/bench_dispatch.py [--contact-points 1000] [--workers 64] [--rounds 3] [--database-url URL]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from statistics import median

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
    ap.add_argument("--workers", type=int, default=64, help="provider calls at once (COMMTEST_DISPATCH_WORKERS)")
    ap.add_argument("--database-url", default=None, help="default: a fresh SQLite file under var/bench/dispatch")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs, each on a fresh database; the figures are their median (this machine is noisy)")
    args = ap.parse_args()

    rounds = [one_round(args) for _ in range(args.rounds)]
    dialect, sent = rounds[0]["dialect"], rounds[0]["sent"]
    rates = sorted(r["dispatch_per_s"] for r in rounds)
    print(f"database: {dialect}; workers: {args.workers}; pings per run: {sent} "
          f"({args.contact_points} contact points x 3 channels)")
    for i, r in enumerate(rounds, 1):
        print(f"round {i}: planning {r['planning_s']:.2f} s; run start -> every ping handed to its provider "
              f"{r['total_s']:.2f} s; dispatch {r['dispatch_per_s']:.0f} pings/s")
    print(f"CPU per attempt while dispatching: the daemon (with its helper process) "
          f"{median(r['daemon_cpu_us'] for r in rounds):.0f} us, "
          f"the rest of the machine (the database) {median(r['other_cpu_us'] for r in rounds):.0f} us; "
          f"reference Python workload {median(r['reference_ms'] for r in rounds):.0f} ms (lower: a faster machine)")
    print(f"RESULT database={dialect} pings={sent} workers={args.workers} rounds={args.rounds} "
          f"planning_s={median(r['planning_s'] for r in rounds):.3f} "
          f"dispatch_per_s={median(rates):.0f} dispatch_min_per_s={rates[0]:.0f} dispatch_max_per_s={rates[-1]:.0f} "
          f"from_start_per_s={median(r['from_start_per_s'] for r in rounds):.0f} "
          f"daemon_cpu_us_per_attempt={median(r['daemon_cpu_us'] for r in rounds):.0f} "
          f"other_cpu_us_per_attempt={median(r['other_cpu_us'] for r in rounds):.0f} "
          f"reference_ms={median(r['reference_ms'] for r in rounds):.0f} "
          f"helper_batches={median(r['helper_batches'] for r in rounds):.0f} target_per_s=3000")


def reference_ms() -> float:
    """A fixed pure-Python workload (JSON and string work, like a batch's), timed: this shared
    machine's speed swings by half from one hour to the next, and this says how fast it ran."""
    doc = [{"id": i, "text": f"Please confirm {i:06d} before 10:15", "data": {"n": i, "flag": i % 2 == 0}}
           for i in range(2000)]
    t0 = time.perf_counter()
    for _ in range(20):
        json.loads(json.dumps(doc))
        "".join(f"{d['id']}:{d['text'].upper()}" for d in doc)
    return (time.perf_counter() - t0) * 1000


def _helper_cpu_s(pid: int | None) -> float:
    """The dispatch helper process's CPU seconds (it is the daemon's too)."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _cpu_s(helper: int | None = None) -> tuple[float, float]:
    """(this process's and its helper's CPU seconds, the whole machine's busy seconds)."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return ru.ru_utime + ru.ru_stime + _helper_cpu_s(helper), busy / os.sysconf("SC_CLK_TCK")


def one_round(args: argparse.Namespace) -> dict[str, float | int | str]:
    engine = fresh_engine(args.database_url, Path("var/bench/dispatch"))
    seed(engine, args.contact_points, playbook())
    # The sandbox stands in for the providers (COMMTEST_SANDBOX: never used silently).
    settings = load_settings(database_url=str(engine.url.render_as_string(hide_password=False)),
                             dispatch_workers=args.workers, sandbox=True)
    clock = SystemClock()
    script = SandboxScript(default=Rule("never"))
    record = SandboxRecord()
    channels = ChannelSet(settings, clock, {k: SandboxChannel(k, clock, script, record) for k in KINDS_SANDBOX})
    runs = RunEngine(engine, settings, clock, channels, actor="bench", prepare_ahead=True)  # as the daemon's
    if runs.preparer is not None:
        # As in a daemon that sent a wave in the last few minutes: its helper process is running
        # (a daemon's first wave after an idle spell prepares in its own thread for about a second).
        runs.preparer.warm()
        runs.preparer.wait_ready(60)

    reference = reference_ms()
    t0 = time.perf_counter()
    run_id = runs.create_run("bench")
    planned = runs.start_run(run_id)
    t_planned = time.perf_counter()
    helper = runs.preparer.pid if runs.preparer is not None else None
    own0, busy0 = _cpu_s(helper)
    sent = 0
    while True:
        n = runs.dispatch_due()
        sent += n
        if n == 0:
            break
    t_done = time.perf_counter()
    own1, busy1 = _cpu_s(helper)
    runs.close()
    engine.dispose()
    helper_batches = runs.preparer.batches if runs.preparer is not None else 0
    assert len(record.sent) == planned == sent, (len(record.sent), planned, sent)
    return {"dialect": engine.dialect.name, "sent": sent, "planning_s": t_planned - t0, "total_s": t_done - t0,
            "dispatch_per_s": sent / (t_done - t_planned), "from_start_per_s": sent / (t_done - t0),
            "daemon_cpu_us": (own1 - own0) / sent * 1e6, "other_cpu_us": max(0.0, (busy1 - busy0) - (own1 - own0)) / sent * 1e6,
            "reference_ms": reference, "helper_batches": helper_batches}


if __name__ == "__main__":
    main()
