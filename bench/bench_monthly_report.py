"""Benchmark: the monthly report over a year of history at scale.

Generates a year of runs (default 1,000,000 pings and their ~4.7 events each) into a
SQLite file under var/bench/ with Core executemany inserts, then times the monthly
report of the last month (figures + 12-month trend) to HTML and to PDF, and prints the
peak memory (ru_maxrss of the process, and tracemalloc's peak during the report). The HTML is
timed twice: on a database where no month's figures were kept yet, then as usual (each month's
own report kept its figures: month_rollup). Meanwhile officers acknowledge a run going on and
the engine ticks: every failure is counted (there must be none).

    .venv/bin/python bench/bench_monthly_report.py --pings 100000
"""
from __future__ import annotations

import argparse
import random
import resource
import sys
import time
import tracemalloc
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from commtest.clock import UTC, FrozenClock  # noqa: E402
from commtest.db import make_engine, upgrade  # noqa: E402
from commtest.models import (  # noqa: E402
    CheckFact,
    ContactPoint,
    Endpoint,
    Event,
    FieldOfWork,
    Organisation,
    Ping,
    Playbook,
    PlaybookRevision,
    TestRun,
    VerdictFact,
)

PLAYBOOK = """\
id: bench
title: Benchmark playbook
owner: ORG-00
participants:
{participants}
steps:
  - {{id: mail, channel: email, template: t, ack_deadline: 30m}}
  - {{id: call, channel: voice, template: t, ack_deadline: 10m}}
  - {{id: text, channel: sms, template: t, ack_deadline: 15m}}
targets: {{email: 15m, voice: 5m, sms: 10m}}
templates:
  t: {{en: {{subject: Test, body: Please acknowledge.}}}}
"""
CHANNELS = ("email", "voice", "sms")
OUTCOMES_NO_ACK = ("delivered_no_ack", "voicemail", "away", "bounced", "provider_failure")
CHUNK = 20_000


def generate(url: str, n_pings: int, orgs: int = 25, cps_per_org: int = 8, year_end: datetime | None = None) -> str:
    engine = make_engine(url)
    upgrade(engine)
    rnd = random.Random(5)
    year_end = year_end or datetime(2026, 1, 1, tzinfo=UTC)
    t = {m.__tablename__: m.__table__ for m in (ContactPoint, Endpoint, Event, FieldOfWork, Organisation, Ping,  # type: ignore[attr-defined]
                                                 Playbook, PlaybookRevision, TestRun, CheckFact, VerdictFact)}
    parts = "\n".join(f"  - {{organisation: ORG-{i:02d}, fields: [desk]}}" for i in range(orgs))
    with engine.begin() as c:
        c.execute(t["field_of_work"].insert(), [{"id": 1, "code": "desk", "name": "Desk", "names": {}}])
        c.execute(t["organisation"].insert(), [
            {"id": i + 1, "code": f"ORG-{i:02d}", "name": f"Organisation {i}", "country": "BE", "languages": ["en"],
             "timezone": "Europe/Brussels", "role": "participant", "notes": ""} for i in range(orgs)])
        cps, eps = [], []
        for o in range(orgs):
            for k in range(cps_per_org):
                cp_id = o * cps_per_org + k + 1
                cps.append({"id": cp_id, "code": f"ORG-{o:02d}/desk-{k}", "organisation_id": o + 1, "field_id": 1,
                            "name": f"Desk {o}-{k}", "kind": "desk", "title": "", "languages": ["en"], "active": True,
                            "notes": ""})
                for j, ch in enumerate(CHANNELS):
                    address = f"desk{cp_id}@org{o}.example" if ch == "email" else f"+4477009{cp_id:05d}"
                    eps.append({"id": cp_id * 3 + j, "contact_point_id": cp_id, "kind": ch, "address": address,
                                "priority": 1, "label": "", "status": "active"})
        c.execute(t["contact_point"].insert(), cps)
        c.execute(t["endpoint"].insert(), eps)
        c.execute(t["playbook"].insert(), [{"id": "bench", "source_path": ""}])
        c.execute(t["playbook_revision"].insert(), [{
            "id": 1, "playbook_id": "bench", "content_hash": "0" * 64, "title": "Benchmark", "owner": "ORG-00",
            "source_path": "", "source_text": PLAYBOOK.format(participants=parts), "created_at": year_end}])

    per_run = orgs * cps_per_org * len(CHANNELS)
    n_runs = max(1, n_pings // per_run)
    start = year_end - timedelta(days=365)
    ping_id = event_id = 0
    pings: list[dict[str, object]] = []
    events: list[dict[str, object]] = []
    checks: list[dict[str, object]] = []
    verdicts: list[dict[str, object]] = []
    targets = {"email": 900_000, "voice": 300_000, "sms": 600_000}
    with engine.begin() as c:
        for r in range(n_runs):
            run_id = r + 1
            fire = start + timedelta(seconds=int((365 * 86400 - 7200) * (r + 0.5) / n_runs))
            c.execute(t["test_run"].insert(), [{
                "id": run_id, "playbook_id": "bench", "revision_id": 1, "dedupe_key": f"bench@{run_id}",
                "trigger": "schedule", "announced": False, "status": "completed", "fire_at": fire,
                "started_at": fire, "finished_at": fire + timedelta(hours=1), "started_by": "", "note": ""}])
            run_verdicts: dict[tuple[str, str], list[dict[str, object]]] = {}
            for cp in cps:
                org = f"ORG-{int(cp['organisation_id']) - 1:02d}"
                for j, ch in enumerate(CHANNELS):
                    ping_id += 1
                    sent = fire + timedelta(seconds=rnd.randint(0, 60))
                    acked = rnd.random() < 0.92
                    ms = int(rnd.lognormvariate(11.0, 0.9)) if acked else None  # median about 60 s
                    outcome = ("acked" if ms < 1_800_000 else "acked_late") if ms is not None else rnd.choice(OUTCOMES_NO_ACK)
                    pings.append({"id": ping_id, "run_id": run_id, "contact_point_id": cp["id"],
                                  "endpoint_id": int(cp["id"]) * 3 + j, "organisation_code": org, "channel": ch,
                                  "provider": "sandbox", "address": "", "language": "en", "step": ch, "attempt": 1,
                                  "step_attempt": 1, "state": "acked" if ms else "expired", "outcome": outcome,
                                  "due_at": sent, "ack_suspicious": False})
                    common = {"actor": "bench", "run_id": run_id, "ping_id": ping_id, "organisation_code": org,
                              "channel": ch}
                    rows = [("ping.planned", sent - timedelta(seconds=1), None, None, {"due_at": sent.isoformat()}),
                            ("ping.sent", sent, None, None, {}),
                            ("ping.delivered", sent + timedelta(seconds=1), None, None, {"status": "delivered"})]
                    if ms is not None:
                        rows.append(("ping.acked", sent + timedelta(milliseconds=ms), None, ms, {"method": "link"}))
                    settle = sent + timedelta(milliseconds=ms) if ms is not None else sent + timedelta(minutes=30)
                    rows.append(("ping.settled", settle, outcome, ms, {}))
                    for kind, at, out, rms, data in rows:
                        event_id += 1
                        events.append({"id": event_id, "at": at, "kind": kind, "outcome": out, "response_ms": rms,
                                       "data": data, **common})
                    # One attempt per check here: its fact is what commtest.facts derives from these events.
                    contact = sent + timedelta(seconds=1)
                    response = None if ms is None else max(0, ms - 1000)
                    answered = ms is not None
                    in_target = answered and outcome == "acked" and response is not None and response <= targets[ch]
                    tested = outcome != "provider_failure"
                    check = {"run_id": run_id, "fire_at": fire, "organisation_code": org, "contact_point_id": cp["id"],
                             "contact_point_code": cp["code"], "field_code": "desk", "channel": ch,
                             "attempts_planned": 1, "attempts_sent": 1, "first_contact_at": contact,
                             "answered_at": sent + timedelta(milliseconds=ms) if ms is not None else None,
                             "response_ms": response, "outcome": outcome,
                             "status": ("pass" if in_target else "fail") if tested else "not_tested",
                             "method": "link" if answered else None, "answered_by": None,
                             "late": outcome == "acked_late", "suspicious": False, "simulated": False,
                             "target_ms": targets[ch], "endpoint_id": int(cp["id"]) * 3 + j, "address": "",
                             "provider": "sandbox", "detail": ""}
                    checks.append(check)
                    run_verdicts.setdefault((org, ch), []).append(check)
                    if len(events) >= CHUNK:
                        _flush(c, t, pings, events, checks)
            for (org, ch), items in run_verdicts.items():
                passed = sum(1 for x in items if x["status"] == "pass")
                answered_n = sum(1 for x in items if x["answered_at"] is not None)
                times = [x["response_ms"] for x in items if x["response_ms"] is not None]
                verdicts.append({"run_id": run_id, "fire_at": fire, "organisation_code": org, "channel": ch,
                                 "verdict": "pass" if passed else "fail", "answer": "any", "checks": len(items),
                                 "answered": answered_n, "in_target": passed, "gaps": 0,
                                 "best_response_ms": min(times) if times else None, "target_ms": targets[ch],
                                 "simulated": False})
            c.execute(t["verdict_fact"].insert(), verdicts)
            verdicts.clear()
            if run_id % max(1, n_runs // 10) == 0:
                print(f"  generated run {run_id}/{n_runs}: {ping_id:,} pings, {event_id:,} events", flush=True)
        _flush(c, t, pings, events, checks)
        # Half of the endpoints were proven reachable recently, for the freshness figure.
        c.execute(t["endpoint"].update().where(t["endpoint"].c.id % 2 == 0).values(verified_at=year_end - timedelta(days=20)))
    engine.dispose()
    last = year_end - timedelta(days=1)
    return f"{last:%Y-%m}"


def _flush(c: sa.Connection, t: dict[str, sa.Table], pings: list[dict[str, object]], events: list[dict[str, object]],
           checks: list[dict[str, object]]) -> None:
    if pings:
        c.execute(t["ping"].insert(), pings)
    if events:
        c.execute(t["event"].insert(), events)
    if checks:
        c.execute(t["check_fact"].insert(), checks)
    pings.clear()
    events.clear()
    checks.clear()


def prepare_live_run(engine: sa.Engine, n: int) -> list[str]:
    """A run going on while the report is computed: ``n`` attempts sent, each with its token."""
    import hashlib
    import secrets

    now = datetime.now(UTC)
    t = {m.__tablename__: m.__table__ for m in (Ping, TestRun)}  # type: ignore[attr-defined]
    with engine.begin() as c:
        # A new run each time (the event log is append-only: an earlier benchmark's run stays, aborted).
        c.execute(sa.text("UPDATE test_run SET status = 'aborted' WHERE (dedupe_key = 'live' OR dedupe_key LIKE 'live-%') AND status = 'running'"))
        run_id = c.execute(t["test_run"].insert().returning(t["test_run"].c.id), [{
            "playbook_id": "bench", "revision_id": 1, "dedupe_key": f"live-{secrets.token_hex(4)}", "trigger": "manual",
            "announced": False,
            "status": "running", "fire_at": now, "started_at": now, "started_by": "", "note": ""}]).scalar_one()
        cps = c.execute(sa.text("SELECT id, organisation_id FROM contact_point ORDER BY id")).all()
        tokens = [secrets.token_urlsafe(32) for _ in range(n)]
        c.execute(t["ping"].insert(), [{
            "run_id": run_id, "contact_point_id": cps[i % len(cps)][0], "endpoint_id": cps[i % len(cps)][0] * 3,
            "organisation_code": f"ORG-{cps[i % len(cps)][1] - 1:02d}", "channel": "email", "provider": "smtp",
            "address": "", "language": "en", "step": "mail", "attempt": 1 + i // len(cps), "step_attempt": 1,
            "state": "sent", "due_at": now, "dispatching_at": now, "sent_at": now,
            "deadline_at": now + timedelta(hours=6), "token_hash": hashlib.sha256(tok.encode()).hexdigest(),
            "token_expires_at": now + timedelta(days=1), "ack_suspicious": False, "simulated": False}
            for i, tok in enumerate(tokens)])
    return tokens


class Beside:
    """What must go on while a report is computed: officers' acknowledgements (the web app's
    group-committed writer, as many as it takes) and the engine's ticks. Counts failures."""

    def __init__(self, engine: sa.Engine, tokens: list[str]) -> None:
        import threading

        from commtest.settings import load_settings

        self.engine, self.tokens = engine, tokens
        self.settings = load_settings(database_url=str(engine.url), channels={"email": "smtp"})
        self.stopping = threading.Event()
        self.acks = self.ticks = self.failures = 0
        self.latencies: list[float] = []
        self.threads = [threading.Thread(target=self._answer, daemon=True),
                        threading.Thread(target=self._tick, daemon=True)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(60)

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[int(len(ordered) * 0.99)] * 1000 if ordered else float("nan")

    def _answer(self) -> None:
        from commtest.clock import SystemClock
        from scheduler.ack_group import Answer
        from scheduler.ack_writer import AckWriter

        writer = AckWriter(self.engine, SystemClock(), self.settings)
        for token in self.tokens:
            if self.stopping.is_set():
                break
            t0 = time.perf_counter()
            try:
                outcome = writer.submit(Answer(token, "link", None, "bench", "127.0.0.1")).result(120)
                self.acks += outcome.status == "acked"
                self.failures += outcome.status != "acked"
            except Exception as exc:  # noqa: BLE001 - what the benchmark counts
                print(f"acknowledgement failed: {exc}")
                self.failures += 1
            self.latencies.append(time.perf_counter() - t0)
            time.sleep(0.005)
        writer.close()

    def _tick(self) -> None:
        from channels.registry import ChannelSet
        from commtest.clock import SystemClock
        from scheduler.engine import RunEngine

        runs = RunEngine(self.engine, self.settings, SystemClock(), ChannelSet(self.settings, SystemClock(), {}),
                         actor="bench")
        while not self.stopping.wait(0.2):
            try:
                runs.tick()
                self.ticks += 1
            except Exception as exc:  # noqa: BLE001 - what the benchmark counts
                print(f"tick failed: {exc}")
                self.failures += 1
        runs.close(close_channels=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pings", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=REPO / "var" / "bench" / "monthly.db")
    parser.add_argument("--reuse", action="store_true", help="Reuse the database if it exists (skip generation).")
    args = parser.parse_args()

    from reports.monthly import write_monthly
    from reports.monthly_figures import compute_monthly_figures

    url = f"sqlite:///{args.db}"
    if not (args.reuse and args.db.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{args.db}{suffix}").unlink(missing_ok=True)
        args.db.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        month = generate(url, args.pings)
        print(f"generated {args.pings:,} pings in {time.perf_counter() - t0:.1f} s into {args.db}")
    else:
        month = "2025-12"
    engine = make_engine(url)
    upgrade(engine)  # a database kept from an earlier version gets the tables and indexes of this one
    with engine.connect() as c:
        n_pings = c.execute(sa.text("select count(*) from ping")).scalar_one()
        n_events = c.execute(sa.text("select count(*) from event")).scalar_one()
    print(f"database: {n_pings:,} pings, {n_events:,} events; report month {month}")

    tokens = prepare_live_run(engine, 20_000)
    load = Beside(engine, tokens)
    load.start()
    tracemalloc.start()
    t0 = time.perf_counter()
    figures = compute_monthly_figures(engine, month)  # fresh: every month from its checks
    t_fig = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    # tracemalloc slows pure-Python code (WeasyPrint) several times: only the figures are traced.
    tracemalloc.stop()
    clock = FrozenClock(datetime(2026, 1, 1, 6, tzinfo=UTC))
    out = REPO / "var" / "bench"
    with engine.begin() as c:  # as on a fresh database: no month kept yet
        c.execute(sa.text("DELETE FROM month_rollup"))
    t0 = time.perf_counter()
    write_monthly(engine, month, clock, out, formats=("html",))
    t_html_cold = time.perf_counter() - t0
    load.stop()  # the load ran through two reports computed from every month's checks (the longest)
    with engine.begin() as c:  # the run going on ends with it (bench_idle.py reuses this database)
        c.execute(sa.text("UPDATE test_run SET status = 'aborted' WHERE dedupe_key LIKE 'live-%' AND status = 'running'"))
    # Each month's own report (the daemon's job on the 1st) kept its figures: the usual case.
    t0 = time.perf_counter()
    (html_path,) = write_monthly(engine, month, clock, out, formats=("html",))
    t_html = time.perf_counter() - t0
    t0 = time.perf_counter()
    (pdf_path,) = write_monthly(engine, month, clock, out, formats=("pdf",))
    t_pdf = time.perf_counter() - t0
    maxrss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"month {month}: {len(figures.runs)} runs, {figures.totals.checks:,} checks, ack rate {figures.totals.ack_rate}, "
          f"median {figures.totals.median_ms} ms, p90 {figures.totals.p90_ms} ms")
    print(f"figures only, every month from its checks: {t_fig:.2f} s")
    print(f"monthly report to HTML, no month kept yet: {t_html_cold:.2f} s")
    print(f"monthly report to HTML (figures + render): {t_html:.2f} s -> {html_path}")
    print(f"monthly report to PDF  (figures + render): {t_pdf:.2f} s -> {pdf_path}")
    print(f"peak memory: tracemalloc {peak / 1e6:.1f} MB while computing the figures; process max RSS {maxrss_mb:.0f} MB")
    print(f"during the first two: {load.acks} acknowledgements (p99 {load.p99_ms():.0f} ms) and {load.ticks} engine ticks; "
          f"failures: {load.failures}")
    print(f"RESULT pings={n_pings} figures_s={t_fig:.2f} html_cold_s={t_html_cold:.2f} html_s={t_html:.2f} "
          f"pdf_s={t_pdf:.2f} rss_mb={maxrss_mb:.0f} acks_during={load.acks} ack_p99_ms={load.p99_ms():.0f} "
          f"ticks_during={load.ticks} failures_during={load.failures} html_target_s=2 pdf_target_s=10 rss_target_mb=300")


if __name__ == "__main__":
    main()
