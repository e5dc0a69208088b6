"""A run at a glance: one row per organisation and channel (``commtest runs show``).

The full test report (reports/) computes its numbers from the event log; this summary
reads the pings of one run, which is what the daemon and the CLI need while it runs.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from sqlmodel import Session, select

from commtest.models import Event, Outcome, Ping, PingState, TestRun
from commtest import events as ev
from scheduler.records import OPEN_STATES, _response_ms
from scheduler.specs import spec_for_revision


@dataclass(frozen=True)
class SummaryRow:
    organisation_code: str
    channel: str
    sent: int
    acked: int
    response_ms: int | None  # fastest acknowledgement of the first contact point to answer
    outcome: str  # the most telling outcome class among the pings
    verdict: str  # pass | fail | pending | no endpoint | not tested (the test report's rule)
    target_s: int | None


@dataclass
class RunSummary:
    run_id: int
    status: str
    rows: list[SummaryRow] = field(default_factory=list)


# Which outcome describes an (organisation, channel) best when pings differ: the best news first.
_RANK = [o.value for o in (Outcome.acked, Outcome.acked_late, Outcome.manual, Outcome.self_reported, Outcome.voicemail,
                           Outcome.away, Outcome.delivered_no_ack, Outcome.bounced, Outcome.invalid_endpoint,
                           Outcome.provider_failure, Outcome.unknown, Outcome.cancelled)]


def run_summary(session: Session, run_id: int) -> RunSummary:
    run = session.get(TestRun, run_id)
    assert run is not None
    spec = spec_for_revision(session, run.revision_id)
    pings = session.exec(select(Ping).where(Ping.run_id == run_id)).all()
    groups: dict[tuple[str, str], list[Ping]] = defaultdict(list)
    for p in pings:
        groups[(p.organisation_code, p.channel)].append(p)
    gaps = session.exec(select(Event).where(Event.run_id == run_id, Event.kind == ev.RUN_GAP)).all()
    for g in gaps:
        if g.organisation_code and g.channel:
            groups.setdefault((g.organisation_code, g.channel), [])
    rows = []
    for (org, channel), items in sorted(groups.items()):
        target = spec.targets.get(channel)  # type: ignore[call-overload]
        target_s = int(target.total_seconds()) if target else None
        rows.append(_row(org, channel, items, target, target_s))
    return RunSummary(run_id=run_id, status=run.status, rows=rows)


def _row(org: str, channel: str, items: list[Ping], target: timedelta | None, target_s: int | None) -> SummaryRow:
    if not items:
        return SummaryRow(org, channel, 0, 0, None, "-", "no endpoint", target_s)
    sent = sum(1 for p in items if p.sent_at is not None)
    acked = [p for p in items if p.acked_at is not None]
    outcomes = [p.outcome for p in items if p.outcome]
    outcome = min(outcomes, key=lambda o: _RANK.index(o) if o in _RANK else 99) if outcomes else (
        items[0].state if items else "-")
    # Per contact point: did it answer in time?
    by_cp: dict[int, list[Ping]] = defaultdict(list)
    for p in items:
        by_cp[p.contact_point_id].append(p)
    best: list[int] = []
    verdicts = []
    for cp_pings in by_cp.values():
        responses = [r for p in cp_pings if p.acked_at and (r := _response_ms(p)) is not None]
        open_ = any(p.state in OPEN_STATES for p in cp_pings)
        if responses:
            fastest = min(responses)
            best.append(fastest)
            on_time = target is None or fastest <= target.total_seconds() * 1000
            # Late is a fail against the target, as in the test report; the outcome column
            # (acked_late) still says they answered.
            verdicts.append("pass" if on_time else "fail")
        elif open_:
            verdicts.append("pending")
        else:
            verdicts.append("fail")
    ours = {Outcome.provider_failure.value, Outcome.unknown.value}
    if not acked and items and not any(p.state in OPEN_STATES for p in items) and all(p.outcome in ours for p in items):
        verdict = "not tested"  # every attempt failed on our side: not the centre's fault
    elif "fail" in verdicts:
        verdict = "fail"
    elif "pending" in verdicts:
        verdict = "pending"
    elif "late" in verdicts:
        verdict = "late"
    else:
        verdict = "pass"
    return SummaryRow(org, channel, sent, len(acked), min(best) if best else None, outcome, verdict, target_s)


def open_pings(session: Session, run_id: int) -> int:
    return sum(1 for p in session.exec(select(Ping.state).where(Ping.run_id == run_id)).all() if p in OPEN_STATES)


__all__ = ["RunSummary", "SummaryRow", "run_summary", "open_pings", "PingState"]
