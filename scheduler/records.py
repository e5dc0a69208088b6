"""State changes of pings, each with its event, inside the caller's transaction.

This is the one place that moves a ping from state to state; the engine, the web app
and the mail reader all come through here, so every change lands in the event log.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from commtest import events as ev
from commtest.masking import mask_address
from commtest.models import Endpoint, EndpointStatus, Outcome, Ping, PingState, TestRun

log = logging.getLogger("commtest.ping")

OPEN_STATES = (PingState.pending.value, PingState.dispatching.value, PingState.sent.value, PingState.delivered.value)
AWAITING_ACK = (PingState.sent.value, PingState.delivered.value)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def log_change(ping: Ping, outcome: str, at: datetime) -> None:
    """One line per ping state change (CONVENTIONS.md rule 9), address masked."""
    start = ping.sent_at or ping.due_at
    elapsed = f"{(at - start).total_seconds():.1f}s" if start else "-"
    log.info(
        "run=%s ping=%s channel=%s to=%s attempt=%s outcome=%s elapsed=%s",
        ping.run_id, ping.id, ping.channel, mask_address(ping.address), ping.attempt, outcome, elapsed,
    )


def ping_event(session: Session, ping: Ping, kind: str, at: datetime, actor: str, **kw: object) -> None:
    ev.record_event(
        session, at=at, actor=actor, kind=kind, run_id=ping.run_id, ping_id=ping.id,
        organisation_code=ping.organisation_code, channel=ping.channel, **kw,  # type: ignore[arg-type]
    )


def settle(session: Session, ping: Ping, outcome: Outcome, at: datetime, actor: str, *, state: PingState, reason: str = "") -> None:
    """Give a ping its (new) outcome and state; appends ``ping.settled``."""
    ping.state = state.value
    ping.outcome = outcome.value
    ping.settled_at = at
    if reason:
        ping.error = reason[:1000]
    session.add(ping)
    ping_event(session, ping, ev.PING_SETTLED, at, actor, outcome=outcome.value, response_ms=_response_ms(ping), reason=reason, method=ping.ack_method)
    log_change(ping, outcome.value, at)


def _response_ms(ping: Ping) -> int | None:
    if ping.acked_at is None:
        return None
    # For calls, the clock starts when the phone rings: Twilio queues calls at 1/s per
    # account, so the API call time says nothing about the centre's response.
    start = ping.delivered_at if ping.channel == "voice" and ping.delivered_at else (ping.sent_at or ping.dispatching_at)
    if start is None:
        return None
    return max(0, int((ping.acked_at - start).total_seconds() * 1000))


def mark_delivered(session: Session, ping: Ping, at: datetime, actor: str, status: str = "delivered") -> bool:
    if ping.delivered_at is not None:
        return False
    ping.delivered_at = at
    if ping.state == PingState.sent.value:
        ping.state = PingState.delivered.value
    session.add(ping)
    ping_event(session, ping, ev.PING_DELIVERED, at, actor, status=status)
    return True


@dataclass(frozen=True)
class AckResult:
    ping_id: int
    run_id: int
    status: str  # "acked" | "already" | "too-late-to-count"? (we always record late ones)
    late: bool
    suspicious: bool
    response_ms: int | None
    acked_at: datetime


def acknowledge(
    session: Session,
    ping: Ping,
    at: datetime,
    *,
    method: str,
    actor: str,
    by: str | None = None,
    user_agent: str | None = None,
    source: str | None = None,
    suspicious_within: timedelta = timedelta(seconds=10),
) -> AckResult:
    """Record an acknowledgement once. A second one for the same ping changes nothing.

    A late acknowledgement (after the deadline, even after the ping expired and the
    engine moved on) is still recorded, as ``acked_late``; pending retries of the same
    step for the same contact point are cancelled, since the person has answered.
    """
    if ping.state == PingState.acked.value and ping.acked_at is not None:
        return AckResult(ping.id or 0, ping.run_id, "already", ping.outcome == Outcome.acked_late.value,
                         ping.ack_suspicious, _response_ms(ping), ping.acked_at)
    ping.acked_at = at
    ping.ack_method = method
    ping.ack_by = (by or "")[:200] or None
    start = ping.delivered_at or ping.sent_at or ping.dispatching_at
    # Mail security scanners open (and sometimes submit) every link: a link or reply within
    # seconds of delivery may be a machine. A key pressed on a call or an SMS reply is a person.
    suspicious = ping.channel == "email" and start is not None and (at - start) < suspicious_within
    ping.ack_suspicious = suspicious
    late = ping.deadline_at is not None and at > ping.deadline_at
    response = _response_ms(ping)
    ping_event(
        session, ping, ev.PING_ACKED, at, actor, response_ms=response, method=method, by=by, late=late,
        suspicious=suspicious, user_agent=(user_agent or "")[:300], source=source,
    )
    # Recorded by a coordinator (radio, satellite, a call back): its own outcome class.
    outcome = Outcome.manual if method.startswith("manual") else Outcome.acked_late if late else Outcome.acked
    settle(session, ping, outcome, at, actor, state=PingState.acked)
    _verify_endpoint(session, ping, at, actor)
    # The person answered: later attempts of this step that are not sent yet are moot.
    for other in session.exec(
        select(Ping).where(
            Ping.run_id == ping.run_id,
            Ping.contact_point_id == ping.contact_point_id,
            Ping.step == ping.step,
            Ping.state == PingState.pending.value,
            col(Ping.id) != ping.id,
        )
    ).all():
        settle(session, other, Outcome.cancelled, at, actor, state=PingState.cancelled, reason=f"acknowledged on ping {ping.id}")
    return AckResult(ping.id or 0, ping.run_id, "acked", late, suspicious, response, at)


def _verify_endpoint(session: Session, ping: Ping, at: datetime, actor: str) -> None:
    if ping.endpoint_id is None:
        return
    ep = session.get(Endpoint, ping.endpoint_id)
    if ep is None:
        return
    ep.verified_at = at
    ep.verified_run_id = ping.run_id
    ep.last_outcome = ping.outcome
    ep.last_outcome_at = at
    if ep.status == EndpointStatus.suspect.value:
        ep.status = EndpointStatus.active.value
    session.add(ep)
    ev.record_event(session, at=at, actor=actor, kind=ev.ENDPOINT_VERIFIED, run_id=ping.run_id, ping_id=ping.id,
                    organisation_code=ping.organisation_code, channel=ping.channel, endpoint_id=ep.id)


def flag_endpoint(session: Session, ping: Ping, status: EndpointStatus, at: datetime, actor: str, reason: str) -> None:
    if ping.endpoint_id is None:
        return
    ep = session.get(Endpoint, ping.endpoint_id)
    if ep is None:
        return
    ep.last_outcome = ping.outcome
    ep.last_outcome_at = at
    if ep.status != status.value and not (ep.status == EndpointStatus.invalid.value):
        ep.status = status.value
        ev.record_event(session, at=at, actor=actor, kind=ev.ENDPOINT_STATUS, run_id=ping.run_id, ping_id=ping.id,
                        organisation_code=ping.organisation_code, channel=ping.channel,
                        endpoint_id=ep.id, status=status.value, reason=reason)
    session.add(ep)


def record_endpoint_outcome(session: Session, ping: Ping, at: datetime) -> None:
    if ping.endpoint_id is None:
        return
    ep = session.get(Endpoint, ping.endpoint_id)
    if ep is not None:
        ep.last_outcome = ping.outcome
        ep.last_outcome_at = at
        session.add(ep)


def find_ping(session: Session, *, ping_id: int | None = None, provider_ref: str | None = None,
              token: str | None = None) -> Ping | None:
    if ping_id is not None:
        return session.get(Ping, ping_id)
    if token:
        return session.exec(select(Ping).where(Ping.token_hash == token_hash(token))).first()
    if provider_ref:
        return session.exec(select(Ping).where(Ping.provider_ref == provider_ref)).first()
    return None


def run_of(session: Session, ping: Ping) -> TestRun:
    run = session.get(TestRun, ping.run_id)
    assert run is not None
    return run
