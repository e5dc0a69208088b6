"""How runs are shown on the terminal: the per-organisation table, times, durations."""
from __future__ import annotations

import getpass
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from sqlmodel import col, select

from commtest.context import AppContext
from commtest.db import read_session
from commtest.errors import NotFoundError
from commtest.models import Event, Ping, PlaybookRevision, TestRun


def console() -> Console:
    probe = Console()
    # Piped output (CI logs, `| less`) gets a wide table rather than wrapped cells.
    return Console(highlight=False, soft_wrap=False, width=probe.width if probe.is_terminal else 180)


def local(dt: datetime | None, tz: str) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def duration(ms: int | None) -> str:
    """One duration style everywhere (commtest.i18n): ``3 min 16 s``, ``1 h 02 min``."""
    from commtest.i18n import format_duration

    return "-" if ms is None else format_duration(ms, "en")


def whoami() -> str:
    """Who runs the command, for the event log."""
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def progress_counts(app: AppContext, run_id: int) -> tuple[int, int, str]:
    from scheduler.records import OPEN_STATES

    with read_session(app.engine) as s:
        states = s.exec(select(Ping.state).where(Ping.run_id == run_id)).all()
        run = s.get(TestRun, run_id)
        status = run.status if run else "?"
    return sum(1 for x in states if x not in OPEN_STATES), len(states), status



def show_run(app: AppContext, run_id: int, *, pings: bool) -> None:
    from scheduler.specs import spec_for_revision
    from scheduler.summary import run_summary

    screen = console()
    with read_session(app.engine) as s:
        run = s.get(TestRun, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found; `commtest runs list` shows the runs")
        spec = spec_for_revision(s, run.revision_id)
        rev = s.get(PlaybookRevision, run.revision_id)
        tz = spec.timezone
        summary = run_summary(s, run_id)
        screen.print(f"run {run.id}: {spec.title} ({run.playbook_id} @ {rev.content_hash[:12] if rev else '?'})")
        screen.print(f"status {run.status}; trigger {run.trigger}; started {local(run.started_at, tz)}; "
                      f"finished {local(run.finished_at, tz)}")
        if summary.simulated:
            screen.print("[bold yellow]SIMULATED — not evidence[/bold yellow]: a sandbox or a local fake answered "
                         "for the officers on the rows marked SIMULATED")
        table = Table(title="per organisation and channel (checks: one per contact point)")
        for c in ("organisation", "channel", "checks", "answered", "attempts", "response time", "target", "outcome",
                  "verdict"):
            table.add_column(c)
        for r in summary.rows:
            colour = {"pass": "green", "fail": "red", "pending": "yellow"}.get(r.verdict, "")
            verdict = f"[{colour}]{r.verdict}[/{colour}]" if colour else r.verdict
            if r.simulated:
                verdict += " [bold yellow]SIMULATED[/bold yellow]"
            table.add_row(r.organisation_code, r.channel, str(r.checks), str(r.acked), str(r.sent),
                          duration(r.response_ms), duration(r.target_s * 1000 if r.target_s else None), r.outcome,
                          verdict)
        screen.print(table)
        late_answers = s.exec(select(Event).where(Event.run_id == run_id, Event.kind == "ping.answer_after_close")
                              .order_by(col(Event.id))).all()
        for e in late_answers:
            screen.print(f"[yellow]answered after the test closed[/yellow], at {local(e.at, tz)}: ping {e.ping_id} "
                         f"({e.organisation_code} {e.channel}, {e.data.get('method') or '?'}): recorded, changes nothing")
        all_pings = s.exec(select(Ping).where(Ping.run_id == run_id).order_by(col(Ping.id))).all()
        flagged = [p for p in all_pings if p.ack_suspicious]
        for p in flagged:
            screen.print(f"[yellow]observation[/yellow]: ping {p.id} ({p.organisation_code} {p.channel}) was "
                          f"acknowledged within {app.settings.ack_suspicious_seconds:g}s of delivery: possibly "
                          f"automated (mail security scanner?)")
        for p in all_pings:
            if p.outcome == "template_error":
                screen.print(f"[red]template error[/red]: ping {p.id} ({p.organisation_code} {p.channel}) could not be "
                             f"prepared: {p.error}")
        unknown = [p for p in all_pings if p.state == "unknown"]
        for p in unknown:
            screen.print(f"[red]check[/red]: ping {p.id} ({p.organisation_code} {p.channel} to {p.address}) was "
                          "being sent during a crash: it may or may not have arrived; it was not resent")
        gaps = s.exec(select(Event).where(Event.run_id == run_id, Event.kind == "run.gap")).all()
        for g in gaps:
            screen.print(f"[yellow]gap[/yellow]: {g.organisation_code or ''} {g.channel}: {g.data.get('reason', '')}")
        if pings:
            from commtest.models import ContactPoint
            from scheduler.records import _response_ms

            # Officers know contact points by code (BE-NCCN/crisis-desk), not by row id.
            cp_ids = {p.contact_point_id for p in all_pings}
            cp_codes = dict(s.exec(select(ContactPoint.id, ContactPoint.code)
                                   .where(col(ContactPoint.id).in_(cp_ids))).all()) if cp_ids else {}
            t = Table(title="pings")
            for c in ("ping", "organisation", "contact point", "step", "channel", "attempt", "address", "provider",
                      "state", "outcome", "sent", "acknowledged", "response", "method"):
                t.add_column(c)
            for p in all_pings:
                cp_code = cp_codes.get(p.contact_point_id, str(p.contact_point_id))
                t.add_row(str(p.id), p.organisation_code, cp_code, p.step, p.channel, str(p.attempt),
                          p.address, (p.provider or "-") + (" (SIMULATED)" if p.simulated else ""), p.state,
                          p.outcome or "-", local(p.sent_at, tz)[11:19] if p.sent_at else "-",
                          local(p.acked_at, tz)[11:19] if p.acked_at else "-", duration(_response_ms(p)),
                          (p.ack_method or "-") + (" (!)" if p.ack_suspicious else ""))
            screen.print(t)
