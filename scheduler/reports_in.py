"""What a provider tells us after a send (ringing, an answer, voicemail, a bounce...), applied
to its ping with the same follow-up (retry, escalation) wherever it comes from: the engine's
polling of providers, the mail reader, and the web app's provider webhooks.

``apply_report`` works inside the caller's transaction; ``apply_reports`` opens one durable
transaction (acknowledgements are among the reports and must survive a power cut) and
retries it when it loses a race with another writer.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from channels.base import ChannelReport
from commtest import events as ev
from commtest.clock import Clock
from commtest.db import run_write
from commtest.models import EndpointStatus, Event, Outcome, Ping, PingState
from commtest.settings import Settings
from scheduler import records
from scheduler.bulk import insert_rows, row_value, update_each
from scheduler.silence import follow_up

log = logging.getLogger(__name__)
PT = Ping.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]

# Reports that end an attempt without an answer: (outcome, state, endpoint status to set).
_ENDINGS: dict[str, tuple[Outcome, PingState, EndpointStatus | None]] = {
    "voicemail": (Outcome.voicemail, PingState.expired, None),
    "away": (Outcome.away, PingState.expired, None),
    "busy": (Outcome.busy, PingState.expired, None),
    "no_answer": (Outcome.no_answer, PingState.expired, None),
    "bounced": (Outcome.bounced, PingState.failed, EndpointStatus.suspect),
    "blocked": (Outcome.blocked, PingState.failed, EndpointStatus.blocked),
}
_ENDABLE = (PingState.dispatching.value, *records.AWAITING_ACK)


def apply_report(s: Session, report: ChannelReport, settings: Settings, actor: str,
                 now: datetime | None = None) -> records.AckResult | None:
    """Apply one report in the caller's (durable) transaction. A report for an unknown
    ping, or one that arrives after its ping settled, changes nothing."""
    ping = records.find_ping(s, ping_id=report.ping_id, provider_ref=report.provider_ref, token=report.token)
    if ping is None:
        log.warning("report %s for an unknown ping (ref %s) ignored", report.kind, report.provider_ref)
        return None
    at = report.at
    if report.kind in ("delivered", "ringing"):
        records.mark_delivered(s, ping, at, actor, status=report.kind)
        return None
    if report.kind == "answered":
        records.ping_event(s, ping, ev.PING_ANSWERED, at, actor, by=report.by or "")
        return None
    if report.kind == "acked":
        return records.acknowledge(s, ping, at, method=report.method or "unknown", actor=actor, by=report.by,
                                   suspicious_within=_secs(settings.ack_suspicious_seconds))
    if report.kind in _ENDINGS:
        outcome, state, flag = _ENDINGS[report.kind]
    elif report.kind == "failed":
        outcome = Outcome.invalid_endpoint if report.permanent else Outcome.provider_failure
        state, flag = PingState.failed, (EndpointStatus.suspect if report.permanent else None)
    else:
        log.warning("report kind %r for ping %s not understood; ignored", report.kind, ping.id)
        return None
    # Only an attempt still waiting for its answer ends here: a late voicemail or bounce
    # after the deadline changes nothing (the conditional write loses cleanly). A busy line
    # can be reported before the engine recorded the send (``dispatching``): it counts, and
    # the engine then only adds the send's facts.
    if not records.settle(s, ping, outcome, at, actor, state=state, from_states=_ENDABLE,
                          reason=records.mask_reason(report.detail or report.kind)):
        return None
    if flag is not None:
        records.flag_endpoint(s, ping, flag, at, actor, report.detail or report.kind)
    follow_up(s, ping, max(at, now or at), settings, actor)
    return None


# Reports applied per write transaction: the write lock is never held long, even when a wave of
# delivery reports comes in (one per attempt sent).
REPORT_CHUNK = 200
_DELIVERY = ("delivered", "ringing")


def apply_reports(engine: Engine, settings: Settings, clock: Clock, reports: Sequence[ChannelReport],
                  actor: str, *, give_way: Callable[[], None] | None = None) -> list[records.AckResult | None]:
    """Apply reports in time order, in short durable transactions (each retried on a lost race).

    Delivery reports (delivered, ringing) — one per attempt sent, the bulk of them — are applied
    together, one UPDATE and one INSERT per chunk; every other report (answers, voicemail,
    bounces...) one by one, with its follow-up. A delivery report is batched only when no other
    report of its ping is in the same chunk, so each ping's reports keep their order.
    ``give_way`` runs between chunks (the deadline decisions go first)."""
    ordered = sorted(reports, key=lambda r: r.at)
    results: list[records.AckResult | None] = []
    for start in range(0, len(ordered), REPORT_CHUNK):
        chunk = ordered[start:start + REPORT_CHUNK]
        if give_way is not None and start:
            give_way()

        def work(s: Session, chunk: list[ChannelReport] = chunk) -> list[records.AckResult | None]:
            now = clock.now()
            batched = _apply_deliveries(s, chunk, actor)
            return [None if i in batched else apply_report(s, r, settings, actor, now) for i, r in enumerate(chunk)]

        results.extend(run_write(engine, work, durable=True))
    return results


def _apply_deliveries(s: Session, chunk: list[ChannelReport], actor: str) -> set[int]:
    """Apply the delivery reports of ``chunk`` that can go together; returns their positions."""
    per_ping: dict[object, int] = {}
    for r in chunk:
        key = r.ping_id if r.ping_id is not None else r.provider_ref
        per_ping[key] = per_ping.get(key, 0) + 1
    alone = [(i, r) for i, r in enumerate(chunk) if r.kind in _DELIVERY and r.ping_id is not None
             and per_ping[r.ping_id] == 1]
    if len(alone) < 2:
        return set()  # nothing to gain: the general path
    conn = s.connection()
    rows = conn.execute(sa.select(PT.c.id, PT.c.run_id, PT.c.organisation_code, PT.c.channel, PT.c.delivered_at)
                        .where(PT.c.id.in_({r.ping_id for _, r in alone}))).all()
    known = {row.id: row for row in rows}
    todo = [(i, r) for i, r in alone if r.ping_id in known and known[r.ping_id].delivered_at is None]
    handled = {i for i, r in alone if r.ping_id not in known or known[r.ping_id].delivered_at is not None}
    for r in (r for i, r in alone if r.ping_id not in known):
        log.warning("report %s for an unknown ping (ref %s) ignored", r.kind, r.provider_ref)
    if not todo:
        return handled
    done = update_each(
        conn, PT, [{"id": r.ping_id, "at": r.at} for _, r in todo], only_if=PT.c.delivered_at.is_(None),
        values={"delivered_at": row_value("at"),
                "state": sa.case((PT.c.state == PingState.sent.value, PingState.delivered.value), else_=PT.c.state)},
        per_row={"at": PT.c.delivered_at.type})
    if done is None:  # some were marked meanwhile: ours carry our instants
        at_of = {r.ping_id: r.at for _, r in todo}
        done = {row.id for row in conn.execute(sa.select(PT.c.id, PT.c.delivered_at).where(
            PT.c.id.in_(at_of))) if row.delivered_at == at_of[row.id]}
    events = [{"at": r.at, "actor": actor, "kind": ev.PING_DELIVERED, "run_id": known[r.ping_id].run_id,
               "ping_id": r.ping_id, "organisation_code": known[r.ping_id].organisation_code,
               "channel": known[r.ping_id].channel, "outcome": None, "response_ms": None,
               "data": {"status": r.kind}} for _, r in todo if r.ping_id in done]
    if events:
        insert_rows(conn, ET, events)
    return handled | {i for i, _ in todo}


def _secs(value: float) -> timedelta:
    return timedelta(seconds=value)
