"""Recording what the providers answered for a batch of attempts: sent, refused, or unclear.

The common case — every attempt of the batch accepted while it was still ``dispatching`` — is
two statements whatever the batch size: one conditional UPDATE (``WHERE state =
'dispatching'``, scheduler.bulk) that gives each attempt its facts, one INSERT of their events. The rare
cases (refused, accepted after an answer already came in, accepted for a run aborted meanwhile)
go through the general per-attempt path (``records``), which also plans their follow-up.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from channels.base import SendResult
from commtest import events as ev
from commtest.errors import ChannelError
from commtest.models import EndpointStatus, Event, Outcome, Ping, PingState, RunStatus, TestRun
from commtest.settings import Settings
from scheduler import records
from scheduler.bulk import insert_rows, row_value, update_each
from scheduler.dispatch import Claimed
from scheduler.silence import follow_up

log = logging.getLogger(__name__)

PT = Ping.__table__  # type: ignore[attr-defined]
RT = TestRun.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Sent:
    """A provider accepted the attempt: which one, and whether it plays the far side."""

    result: SendResult
    provider: str
    simulated: bool


@dataclass
class Recorded:
    """What recording a batch changed, for the leader's timers."""

    deadlines: list[datetime]
    due: list[datetime]


def record_sends(s: Session, claimed: Sequence[Claimed], results: Sequence[Sent | ChannelError], now: datetime,
                 settings: Settings, actor: str) -> Recorded:
    conn = s.connection()
    out = Recorded([], [])
    sent = [(c, r) for c, r in zip(claimed, results, strict=True) if isinstance(r, Sent)]
    done = _record_accepted(conn, sent, now, actor, out) if sent else set()
    rest = [(c, r) for c, r in zip(claimed, results, strict=True) if c.ping_id not in done]
    if not rest:
        return out
    # Attempts whose run was aborted while the provider calls ran (the fast path left them).
    aborted_pings = set(conn.execute(sa.select(PT.c.id).join(RT, RT.c.id == PT.c.run_id).where(
        PT.c.id.in_([c.ping_id for c, _ in rest]), RT.c.status == RunStatus.aborted.value)).scalars())
    loaded = {p.id: p for p in s.exec(select(Ping).where(col(Ping.id).in_([c.ping_id for c, _ in rest]))).all()}
    for c, result in rest:
        ping = loaded[c.ping_id]
        if isinstance(result, Sent):
            _sent_one(s, ping, c, result, now, actor, aborted=ping.id in aborted_pings)
            if ping.deadline_at is not None and ping.state in records.AWAITING_ACK:
                out.deadlines.append(ping.deadline_at)
        else:
            out.due.extend(_fail(s, ping, result, now, settings, actor))
    return out


def _record_accepted(conn: sa.Connection, batch: list[tuple[Claimed, Sent]], now: datetime, actor: str,
                     out: Recorded) -> set[int]:
    """dispatching → sent for every attempt of ``batch`` still dispatching in a run not aborted, in one
    statement."""
    ids = [c.ping_id for c, _ in batch]
    deadline = {c.ping_id: now + timedelta(seconds=c.ack_deadline_s) for c, _ in batch}
    sent_events = [_event(now, actor, ev.PING_SENT, c.outgoing, provider=r.provider,
                          provider_ref=r.result.provider_ref, deadline_at=deadline[c.ping_id], simulated=r.simulated)
                   for c, r in batch]
    done = update_each(
        conn, PT, [{"id": c.ping_id, "dl": deadline[c.ping_id], "ref": r.result.provider_ref,
                    "prov": r.provider[:32], "sim": r.simulated} for c, r in batch],
        # (an attempt whose run was aborted meanwhile takes the general path: see record_sends)
        only_if=sa.and_(PT.c.state == PingState.dispatching.value, ~sa.exists().where(
            RT.c.id == PT.c.run_id, RT.c.status == RunStatus.aborted.value)),
        values={
            # A call can ring before its send is recorded (delivered_at set from ``dispatching``).
            "state": sa.case((PT.c.delivered_at.is_not(None), PingState.delivered.value), else_=PingState.sent.value),
            "sent_at": sa.bindparam("b_now", type_=PT.c.sent_at.type), "deadline_at": row_value("dl"),
            "provider_ref": row_value("ref", lambda ref: sa.func.coalesce(PT.c.provider_ref, ref)),
            "provider": row_value("prov"), "simulated": row_value("sim", lambda sim: sa.or_(PT.c.simulated, sim)),
        },
        per_row={"dl": PT.c.deadline_at.type, "ref": PT.c.provider_ref.type, "prov": PT.c.provider.type,
                 "sim": sa.Boolean()},
        key="send_results.sent", params={"b_now": now}, log=(ET, sent_events))  # their ping.sent events too
    if done is None:  # some were answered or settled meanwhile: ours are those sent just now
        done = set(conn.execute(sa.select(PT.c.id).where(
            PT.c.id.in_(ids), PT.c.sent_at == now,
            PT.c.state.in_((PingState.sent.value, PingState.delivered.value)))).scalars())
        insert_rows(conn, ET, [e for e in sent_events if e["ping_id"] in done])
    if not done:
        return done
    events: list[dict[str, Any]] = []
    delivered: list[int] = []
    for c, r in batch:
        if c.ping_id not in done:
            continue
        o = c.outgoing
        if r.result.delivered:
            delivered.append(c.ping_id)
        out.deadlines.append(deadline[c.ping_id])
        records.log_change(_Logged(o.run_id, o.ping_id, o.channel, o.address, o.attempt, now, now), "sent", now)
    if delivered:
        marked = set(conn.execute(
            PT.update().where(PT.c.id.in_(delivered), PT.c.delivered_at.is_(None)).values(
                delivered_at=now,
                state=sa.case((PT.c.state == PingState.sent.value, PingState.delivered.value), else_=PT.c.state))
            .returning(PT.c.id)).scalars())
        events.extend(_event(now, actor, ev.PING_DELIVERED, c.outgoing, status="delivered")
                      for c, _ in batch if c.ping_id in marked)
        insert_rows(conn, ET, events)
    return done


@dataclass(frozen=True)
class _Logged:
    run_id: int
    id: int
    channel: str
    address: str
    attempt: int
    sent_at: datetime
    due_at: datetime


def _event(at: datetime, actor: str, kind: str, o: Any, **data: Any) -> dict[str, Any]:
    return {"at": at, "actor": actor, "kind": kind, "run_id": o.run_id, "ping_id": o.ping_id,
            "organisation_code": o.organisation_code, "channel": o.channel, "outcome": None, "response_ms": None,
            "data": {k: ev.jsonable(v) for k, v in data.items()}}


def _sent_one(s: Session, ping: Ping, c: Claimed, sent: Sent, now: datetime, actor: str, *, aborted: bool) -> None:
    facts = {"sent_at": ping.sent_at or now, "provider_ref": ping.provider_ref or sent.result.provider_ref,
             "deadline_at": ping.deadline_at or now + timedelta(seconds=c.ack_deadline_s),
             "provider": sent.provider[:32], "simulated": ping.simulated or sent.simulated}
    event = dict(provider=sent.provider, provider_ref=sent.result.provider_ref, deadline_at=facts["deadline_at"],
                 simulated=facts["simulated"])
    if records.update_ping(s, ping, (PingState.dispatching.value,), state=PingState.sent.value, **facts):
        records.ping_event(s, ping, ev.PING_SENT, now, actor, **event)
        records.log_change(ping, "sent", now)
        if sent.result.delivered:
            records.mark_delivered(s, ping, now, actor)
        if aborted:  # aborted while the provider call ran
            records.settle(s, ping, Outcome.aborted, now, actor, state=PingState.expired,
                           from_states=records.AWAITING_ACK, reason="run aborted before an answer came")
    elif ping.sent_at is None:
        # Answered (link, reply) while the provider call was still returning: the
        # acknowledgement stands; only the send facts are added.
        records.update_ping(s, ping, (ping.state,), **facts)
        records.ping_event(s, ping, ev.PING_SENT, now, actor, **event)


def _fail(s: Session, ping: Ping, error: ChannelError, now: datetime, settings: Settings,
          actor: str) -> list[datetime]:
    """A refused or failed attempt: its outcome, the endpoint flagged when the endpoint is at
    fault, and its follow-up; returns when the attempts it planned are due."""
    reason = records.mask_reason(error.message)
    if getattr(error, "simulated", False) and not ping.simulated:
        # A sandbox or a fake refused it: the attempt is simulated, and the directory untouched.
        records.update_ping(s, ping, (PingState.dispatching.value,), simulated=True)
    if error.permanent:
        outcome = Outcome.bounced if error.code == "bounced" else (
            Outcome.blocked if error.code == "blocked" else Outcome.invalid_endpoint)
        if records.settle(s, ping, outcome, now, actor, state=PingState.failed,
                          from_states=(PingState.dispatching.value,), reason=reason):
            status = (EndpointStatus.invalid if error.code == "invalid-number" else
                      EndpointStatus.blocked if error.code == "blocked" else EndpointStatus.suspect)
            records.flag_endpoint(s, ping, status, now, actor, reason)
            return follow_up(s, ping, now, settings, actor).due
    elif error.ambiguous:
        # The provider may have taken it: like a crash mid-call, never resent automatically.
        if records.settle(s, ping, Outcome.unknown, now, actor, state=PingState.unknown,
                          from_states=(PingState.dispatching.value,), reason=reason):
            records.ping_event(s, ping, ev.PING_UNKNOWN, now, actor, reason=reason)
    elif records.settle(s, ping, Outcome.provider_failure, now, actor, state=PingState.failed,
                        from_states=(PingState.dispatching.value,), reason=reason):
        return follow_up(s, ping, now, settings, actor).due
    return []
