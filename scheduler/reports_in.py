"""What a provider tells us after a send (ringing, an answer, voicemail, a bounce...), applied
to its ping with the same follow-up (retry, escalation) wherever it comes from: the engine's
polling of providers, the mail reader, and the web app's provider webhooks.

``apply_report`` works inside the caller's transaction; ``apply_reports`` opens one durable
transaction (acknowledgements are among the reports and must survive a power cut) and
retries it when it loses a race with another writer.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine
from sqlmodel import Session

from channels.base import ChannelReport
from commtest import events as ev
from commtest.clock import Clock
from commtest.db import run_write
from commtest.models import EndpointStatus, Outcome, PingState
from commtest.settings import Settings
from scheduler import records
from scheduler.followup import follow_up

log = logging.getLogger(__name__)

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


def apply_reports(engine: Engine, settings: Settings, clock: Clock, reports: Sequence[ChannelReport],
                  actor: str) -> list[records.AckResult | None]:
    """Apply reports in time order in one durable transaction (retried on a lost race)."""
    ordered = sorted(reports, key=lambda r: r.at)

    def work(s: Session) -> list[records.AckResult | None]:
        now = clock.now()
        return [apply_report(s, r, settings, actor, now) for r in ordered]

    return run_write(engine, work, durable=True)


def _secs(value: float) -> timedelta:
    return timedelta(seconds=value)
