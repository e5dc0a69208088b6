"""State changes of pings, each with its event, inside the caller's transaction.

This is the one place that moves a ping from state to state; the engine, the web app,
the webhooks and the mail reader all come through here, so every change lands in the
event log. Every change is a **conditional write** from the state it read
(``UPDATE ping ... WHERE id = ? AND state IN (...)``; an acknowledgement locks its ping
``FOR UPDATE`` first), so an acknowledgement racing a deadline on any number of replicas
ends in one outcome and one event, and an acknowledgement that was answered 2xx is never
overwritten. Lock order, everywhere: the ping, then its run (shared), then its endpoint.
"""
from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, select

from commtest import events as ev
from commtest.masking import mask_address
from commtest.prepared import PerCount, Prepared
from commtest.models import Endpoint, EndpointStatus, Event, Outcome, Ping, PingState, RunStatus, TestRun
# The engine, the webhooks and the mail reader flag endpoints through this module.
from scheduler.endpoint_flags import flag_endpoint as flag_endpoint
from scheduler.endpoint_flags import mask_reason as mask_reason

log = logging.getLogger("commtest.ping")

OPEN_STATES = (PingState.pending.value, PingState.dispatching.value, PingState.sent.value, PingState.delivered.value)
AWAITING_ACK = (PingState.sent.value, PingState.delivered.value)
# States from which an answer is still an answer (late ones included) while the run is open.
ANSWERABLE = (*AWAITING_ACK, PingState.dispatching.value, PingState.expired.value, PingState.failed.value,
              PingState.unknown.value)
CLOSED_RUN = (RunStatus.completed.value, RunStatus.aborted.value, RunStatus.missed.value)

PT = Ping.__table__  # type: ignore[attr-defined]
EPT = Endpoint.__table__  # type: ignore[attr-defined]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def log_change(ping: Ping | Any, outcome: str, at: datetime) -> None:
    """One line per ping state change (CONVENTIONS.md rule 9), address masked. ``ping`` is
    the ORM object or a row with its columns (the batched paths)."""
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


def _sync(ping: Ping, values: dict[str, Any]) -> None:
    """Bring the loaded object in line with what an UPDATE wrote, without a second write."""
    for key, value in values.items():
        set_committed_value(ping, key, value)


def update_ping(session: Session, ping: Ping, from_states: Iterable[str], **values: Any) -> bool:
    """``UPDATE ping SET ... WHERE id = ? AND state IN from_states``; True when it applied."""
    states = tuple(from_states)
    result = session.connection().execute(
        PT.update().where(PT.c.id == ping.id, PT.c.state.in_(states)).values(**values)
    )
    if result.rowcount != 1:
        return False
    _sync(ping, values)
    return True


def settle(session: Session, ping: Ping, outcome: Outcome, at: datetime, actor: str, *, state: PingState,
           from_states: Iterable[str] = OPEN_STATES, reason: str = "") -> bool:
    """Give a ping its outcome and state if it is still in one of ``from_states``; appends
    ``ping.settled``. False (and nothing written) when another writer settled it first."""
    values: dict[str, Any] = {"state": state.value, "outcome": outcome.value, "settled_at": at}
    if reason:
        values["error"] = reason[:1000]
    if not update_ping(session, ping, from_states, **values):
        return False
    ping_event(session, ping, ev.PING_SETTLED, at, actor, outcome=outcome.value, response_ms=_response_ms(ping),
               reason=reason, method=ping.ack_method)
    log_change(ping, outcome.value, at)
    return True


def _response_ms(ping: Ping) -> int | None:
    """The response time of this attempt alone (a check's runs from its first attempt: commtest.facts)."""
    if ping.acked_at is None:
        return None
    # For calls, the clock starts when the phone rings: Twilio queues calls at 1/s per
    # account, so the API call time says nothing about the centre's response.
    start = ping.delivered_at or ping.sent_at or ping.dispatching_at
    if start is None:
        return None
    return max(0, int((ping.acked_at - start).total_seconds() * 1000))


def mark_delivered(session: Session, ping: Ping, at: datetime, actor: str, status: str = "delivered") -> bool:
    if ping.delivered_at is not None:
        return False
    result = session.connection().execute(
        PT.update().where(PT.c.id == ping.id, PT.c.delivered_at.is_(None)).values(
            delivered_at=at,
            state=sa.case((PT.c.state == PingState.sent.value, PingState.delivered.value), else_=PT.c.state),
        )
    )
    if result.rowcount != 1:
        return False
    set_committed_value(ping, "delivered_at", at)
    if ping.state == PingState.sent.value:
        set_committed_value(ping, "state", PingState.delivered.value)
    ping_event(session, ping, ev.PING_DELIVERED, at, actor, status=status)
    return True


@dataclass(frozen=True)
class AckResult:
    ping_id: int
    run_id: int
    # acked: recorded now; already: an earlier answer stands; after_close: the run had
    # closed, kept as an event only; not_sent: nothing was sent on this ping to answer.
    status: str
    late: bool
    suspicious: bool
    response_ms: int | None
    acked_at: datetime | None
    run_status: str = RunStatus.running.value


def lock_ping(session: Session, ping_id: int) -> Ping | None:
    """The ping, locked against concurrent writers until the transaction ends (PostgreSQL
    ``FOR UPDATE``; SQLite's write transaction holds the database lock already)."""
    session.expire_all()  # never decide on a copy read before the lock
    return session.exec(select(Ping).where(Ping.id == ping_id).with_for_update()).first()


RT = TestRun.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]
ACK_COLUMNS = (PT.c.id, PT.c.run_id, PT.c.contact_point_id, PT.c.organisation_code, PT.c.channel, PT.c.step,
                PT.c.state, PT.c.outcome, PT.c.acked_at, PT.c.ack_suspicious, PT.c.deadline_at, PT.c.delivered_at,
                PT.c.sent_at, PT.c.dispatching_at, PT.c.simulated, PT.c.endpoint_id, PT.c.attempt, PT.c.address)


def locked_answer_row(conn: sa.Connection, where: Any, params: dict[str, Any] | None = None) -> Any:
    """The ping ``where`` selects and its run's status, for an answer: the ping locked FOR
    UPDATE, its run held FOR SHARE (a run cannot close while an answer for it is recorded;
    a closing run takes its row FOR UPDATE), in one statement on SQLite (whose write
    transaction holds the whole database) and two on PostgreSQL. ``where`` may be one of the
    prebuilt conditions below (``BY_TOKEN``, ``BY_ID``) with its ``params``: a statement built
    once is compiled once, which the hot path of the acknowledgement pages needs."""
    sqlite = conn.dialect.name == "sqlite"
    if where is BY_TOKEN or where is BY_ID:
        prepared = _ANSWER_ROW_SQLITE[where is BY_TOKEN] if sqlite else _ANSWER_ROW_PG[where is BY_TOKEN]
        row = prepared.run(conn, params).first()
        if sqlite or row is None:
            return row
        return _WithStatus(row, _RUN_STATUS_SHARED.run(conn, {"run_id": row.run_id}).scalar()
                           or RunStatus.completed.value)
    if sqlite:
        stmt = sa.select(*ACK_COLUMNS, RT.c.status.label("run_status")).join(RT, RT.c.id == PT.c.run_id).where(where)
    else:
        stmt = sa.select(*ACK_COLUMNS).where(where).with_for_update(of=PT)
    row = conn.execute(stmt, params or {}).first()
    if sqlite or row is None:
        return row
    status = _RUN_STATUS_SHARED.run(conn, {"run_id": row.run_id}).scalar()
    return _WithStatus(row, status or RunStatus.completed.value)


BY_TOKEN = PT.c.token_hash == sa.bindparam("token_hash")
BY_ID = PT.c.id == sa.bindparam("ping_id")
_ANSWER_ROW_SQLITE = {
    by_token: Prepared(sa.select(*ACK_COLUMNS, RT.c.status.label("run_status")).join(RT, RT.c.id == PT.c.run_id)
    .where(BY_TOKEN if by_token else BY_ID))
    for by_token in (True, False)
}
_ANSWER_ROW_PG = {
    by_token: Prepared(sa.select(*ACK_COLUMNS).where(BY_TOKEN if by_token else BY_ID).with_for_update(of=PT))
    for by_token in (True, False)
}
_RUN_STATUS_SHARED = Prepared(sa.select(RT.c.status).where(RT.c.id == sa.bindparam("run_id"))
                              .with_for_update(read=True))


class _WithStatus:
    def __init__(self, row: Any, status: str) -> None:
        self._row, self.run_status = row, status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


# The statements of an acknowledgement, built and compiled once, run on the driver's cursor
# (commtest.prepared: the writer's hot path; see locked_answer_row).
_AT = sa.bindparam("b_at", type_=PT.c.acked_at.type)  # aware UTC, stored as every instant is
_EVENT_COLUMNS = ("at", "actor", "kind", "run_id", "ping_id", "organisation_code", "channel", "outcome",
                  "response_ms", "data")


def _per_row(ids: list[Any], key: str, column: sa.Column[Any]) -> Any:
    """``CASE id WHEN :id0 THEN :key0 ...``: each row's own value in a statement over many."""
    return sa.case(*((column.table.c.id == ids[i], sa.bindparam(f"{key}{i}", type_=column.type))
                     for i in range(len(ids))))


def _ack_update(n: int) -> sa.Executable:
    """The conditional update of ``n`` acknowledged pings, each with its own values: applied to
    a ping only while it is still answerable and unanswered (rowcount: how many applied)."""
    ids = [sa.bindparam(f"p{i}", type_=PT.c.id.type) for i in range(n)]
    return PT.update().where(PT.c.id.in_(ids), PT.c.state.in_(ANSWERABLE), PT.c.acked_at.is_(None)).values(
        acked_at=_AT, settled_at=_AT, state=PingState.acked.value, ack_method=_per_row(ids, "m", PT.c.ack_method),
        ack_by=_per_row(ids, "b", PT.c.ack_by), ack_suspicious=_per_row(ids, "s", PT.c.ack_suspicious),
        outcome=_per_row(ids, "o", PT.c.outcome), simulated=_per_row(ids, "x", PT.c.simulated))


def _verify_update(n: int) -> sa.Executable:
    """``n`` endpoints verified by answers at ``b_at``, each with its run and outcome."""
    ids = [sa.bindparam(f"e{i}", type_=EPT.c.id.type) for i in range(n)]
    return EPT.update().where(EPT.c.id.in_(ids)).values(
        verified_at=sa.case((sa.or_(EPT.c.verified_at.is_(None), EPT.c.verified_at < _AT), _AT),
                            else_=EPT.c.verified_at),
        verified_run_id=_per_row(ids, "r", EPT.c.verified_run_id), last_outcome=_per_row(ids, "o", EPT.c.last_outcome),
        last_outcome_at=_AT,
        status=sa.case((EPT.c.status == EndpointStatus.suspect.value, EndpointStatus.active.value), else_=EPT.c.status),
    )


def _insert_events(n: int) -> sa.Executable:
    return ET.insert().values([{c: sa.bindparam(f"{c}{i}", type_=ET.c[c].type) for c in _EVENT_COLUMNS}
                               for i in range(n)])


# The statements of acknowledgements, built and compiled once per number of rows, run on the
# driver's cursor (commtest.prepared: the writer's hot path; see locked_answer_row).
ACK_UPDATE = PerCount(_ack_update)
_VERIFY_ENDPOINTS = PerCount(_verify_update)
_INSERT_EVENTS = PerCount(_insert_events)
_CANCEL_PENDING = Prepared(
    PT.update().where(PT.c.run_id == sa.bindparam("b_run_id"), PT.c.contact_point_id == sa.bindparam("b_cp"),
                      PT.c.step == sa.bindparam("b_step"), PT.c.state == PingState.pending.value,
                      PT.c.id != sa.bindparam("b_pid"))
    .values(state=PingState.cancelled.value, outcome=Outcome.cancelled.value, settled_at=_AT,
            error=sa.bindparam("b_error"))
    .returning(PT.c.id, PT.c.run_id, PT.c.organisation_code, PT.c.channel)
)


def insert_events(conn: sa.Connection, events: list[dict[str, Any]]) -> None:
    """``events`` (rows of ``_event_row``) in one INSERT."""
    if events:
        _INSERT_EVENTS(len(events)).run(conn, dict(zip(_event_keys(len(events)),
                                                       [e[c] for e in events for c in _EVENT_COLUMNS], strict=True)))


@functools.lru_cache(maxsize=256)
def _event_keys(n: int) -> tuple[str, ...]:
    """The bind names of ``_insert_events(n)``, row by row (made once: formatting them per group
    cost the writer more than the values)."""
    return tuple(f"{c}{i}" for i in range(n) for c in _EVENT_COLUMNS)


def apply_acks(conn: sa.Connection, plans: list[PlannedAck]) -> int:
    """The conditional updates of ``plans`` (all decided at one moment) in one statement: how many applied."""
    params: dict[str, Any] = {"b_at": plans[0].at}
    for i, plan in enumerate(plans):
        params.update({f"p{i}": plan.row.id, f"m{i}": plan.method, f"b{i}": plan.by, f"s{i}": plan.result.suspicious,
                       f"o{i}": plan.outcome, f"x{i}": plan.simulated})
    return ACK_UPDATE(len(plans)).run(conn, params).rowcount


def _event_row(row: Any, kind: str, at: datetime, actor: str, *, outcome: str | None = None,
               response_ms: int | None = None, **data: Any) -> dict[str, Any]:
    return {"at": at, "actor": actor, "kind": kind, "run_id": row.run_id, "ping_id": row.id,
            "organisation_code": row.organisation_code, "channel": row.channel, "outcome": outcome,
            "response_ms": response_ms, "data": {k: ev.jsonable(v) for k, v in data.items()}}


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
    simulated: bool | None = None,
    note: str | None = None,
) -> AckResult:
    """Record an acknowledgement once. A second one for the same ping changes nothing.

    A late acknowledgement (after the deadline, even after the ping expired and the engine
    moved on) is still recorded while the run is open, as ``acked_late``; attempts of the
    same step not sent yet are cancelled, since the person has answered. After the run
    closed it is kept as ``ping.answer_after_close`` and changes nothing else.
    """
    row = locked_answer_row(session.connection(), BY_ID, {"ping_id": ping.id})
    if row is None:
        raise LookupError(f"ping {ping.id} vanished")
    return acknowledge_row(session, row, at, method=method, actor=actor, by=by, user_agent=user_agent, source=source,
                           suspicious_within=suspicious_within, simulated=simulated, note=note)


def acknowledge_row(
    session: Session,
    row: Any,
    at: datetime,
    *,
    method: str,
    actor: str,
    by: str | None = None,
    user_agent: str | None = None,
    source: str | None = None,
    suspicious_within: timedelta = timedelta(seconds=10),
    simulated: bool | None = None,
    note: str | None = None,
) -> AckResult:
    """``acknowledge`` on a row ``locked_answer_row`` returned (the hot path of the web app:
    a handful of Core statements, no ORM objects)."""
    conn = session.connection()
    plan = plan_ack(row, at, method=method, actor=actor, by=by, user_agent=user_agent, source=source,
                    suspicious_within=suspicious_within, simulated=simulated, note=note)
    if isinstance(plan, AckResult):
        return plan
    if plan is AFTER_CLOSE:
        return after_close(conn, row, at, method=method, actor=actor, by=by, source=source)
    if apply_acks(conn, [plan]) != 1:
        return AckResult(row.id, row.run_id, "already", False, False, None, None, str(row.run_status))
    finish_acks(conn, [plan])
    return plan.result


@dataclass(frozen=True)
class PlannedAck:
    """An acknowledgement decided on a locked row, not written yet (``plan_ack``): the values of
    its conditional update, its result, and its two events."""

    row: Any
    at: datetime
    method: str
    by: str | None
    simulated: bool
    outcome: str
    result: AckResult
    events: list[dict[str, Any]]


AFTER_CLOSE = object()  # plan_ack's answer for a closed run: kept as an event by ``after_close``


def plan_ack(
    row: Any,
    at: datetime,
    *,
    method: str,
    actor: str,
    by: str | None = None,
    user_agent: str | None = None,
    source: str | None = None,
    suspicious_within: timedelta = timedelta(seconds=10),
    simulated: bool | None = None,
    note: str | None = None,
) -> AckResult | PlannedAck | object:
    """What an answer on the locked ``row`` does, decided without writing: an ``AckResult`` when
    nothing is to be written (an earlier answer stands; nothing was sent), ``AFTER_CLOSE``, or
    the ``PlannedAck`` that ``apply_acks`` and ``finish_acks`` write."""
    run_status = str(row.run_status)
    if row.acked_at is not None:
        return AckResult(row.id, row.run_id, "already", row.outcome == Outcome.acked_late.value,
                         bool(row.ack_suspicious), _response_of(row, row.acked_at), row.acked_at, run_status)
    if run_status in CLOSED_RUN:
        return AFTER_CLOSE
    if row.state not in ANSWERABLE:
        return AckResult(row.id, row.run_id, "not_sent", False, False, None, None, run_status)
    start = row.delivered_at or row.sent_at or row.dispatching_at
    # Mail security scanners open (and sometimes submit) every link: a link or reply within
    # seconds of delivery may be a machine. A key pressed on a call or an SMS reply is a person.
    suspicious = row.channel == "email" and start is not None and (at - start) < suspicious_within
    late = row.deadline_at is not None and at > row.deadline_at
    simulated = bool(row.simulated) if simulated is None else (simulated or bool(row.simulated))
    # Recorded by a coordinator (radio, satellite, a call back): its own outcome class.
    if method.startswith("manual"):
        outcome = Outcome.manual
    elif method == "self-reported":
        outcome = Outcome.self_reported
    else:
        outcome = Outcome.acked_late if late else Outcome.acked
    response = _response_of(row, at)
    events = [
        _event_row(row, ev.PING_ACKED, at, actor, response_ms=response, method=method, by=by, late=late,
                   suspicious=suspicious, user_agent=(user_agent or "")[:300], source=source, simulated=simulated,
                   **({"note": note[:500]} if note else {})),
        _event_row(row, ev.PING_SETTLED, at, actor, outcome=outcome.value, response_ms=response, reason="",
                   method=method),
    ]
    return PlannedAck(row, at, method[:32], (by or "")[:200] or None, simulated, outcome.value,
                      AckResult(row.id, row.run_id, "acked", late, suspicious, response, at, run_status), events)


def finish_acks(conn: sa.Connection, plans: list[PlannedAck]) -> None:
    """After the conditional updates of ``plans`` applied: cancel their steps' attempts not sent
    yet, verify their endpoints, and write every event, a statement each for all of them (the
    acknowledgement writer records a whole group this way)."""
    events: list[dict[str, Any]] = []
    cancelled = _cancel_pending(conn, plans)
    verified = _verify_endpoints(conn, plans)
    for plan in plans:
        row, at, actor = plan.row, plan.at, plan.events[0]["actor"]
        events.extend(plan.events)
        # The person answered: later attempts of this step that are not sent yet are moot.
        events.extend(_event_row(c, ev.PING_SETTLED, at, actor, outcome=Outcome.cancelled.value, reason=
                                 f"acknowledged on ping {row.id}", method=None) for c in cancelled.get(row.id, ()))
        if row.id in verified:
            events.append(_event_row(row, ev.ENDPOINT_VERIFIED, at, actor, endpoint_id=row.endpoint_id))
    insert_events(conn, events)
    if log.isEnabledFor(logging.INFO):  # not even the masked addresses when nobody reads them
        for plan in plans:
            row = plan.row
            log.info("run=%s ping=%s channel=%s to=%s attempt=%s outcome=%s", row.run_id, row.id, row.channel,
                     mask_address(row.address), row.attempt, plan.outcome)


def _cancel_pending(conn: sa.Connection, plans: list[PlannedAck]) -> dict[int, list[Any]]:
    """The attempts not sent yet of each acknowledged ping's step, cancelled: one read for all
    the plans, then one conditional update per step that has any (rarely one)."""
    keys = [(p.row.run_id, p.row.contact_point_id, p.row.step) for p in plans]
    pending = {(r.run_id, r.contact_point_id, r.step) for r in _pending_siblings(len(keys)).run(
        conn, {f"k{i}_{j}": v for i, key in enumerate(keys) for j, v in enumerate(key)}).rows}
    cancelled: dict[int, list[Any]] = {}
    for plan, key in zip(plans, keys, strict=True):
        if key in pending:
            row, at = plan.row, plan.at
            cancelled[row.id] = _CANCEL_PENDING.run(conn, {
                "b_run_id": row.run_id, "b_cp": row.contact_point_id, "b_step": row.step, "b_pid": row.id,
                "b_at": at, "b_error": f"acknowledged on ping {row.id}"}).all()
    return cancelled


def _verify_endpoints(conn: sa.Connection, plans: list[PlannedAck]) -> set[int]:
    """The real (not simulated) answers' endpoints marked verified, in one statement: the pings
    whose endpoint was. Two answers through one endpoint leave the last one's run and outcome."""
    real = [p for p in plans if not p.simulated and p.row.endpoint_id is not None]
    if not real:
        return set()
    last = {p.row.endpoint_id: p for p in real}
    if _verify(conn, list(last.values())) == len(last):
        return {p.row.id for p in real}
    # An endpoint gone meanwhile: one at a time, the event only where the update applied.
    verified = {eid for eid, p in last.items() if _verify(conn, [p])}
    return {p.row.id for p in real if p.row.endpoint_id in verified}


def _verify(conn: sa.Connection, plans: list[PlannedAck]) -> int:
    params: dict[str, Any] = {"b_at": plans[0].at}
    for i, plan in enumerate(plans):
        params.update({f"e{i}": plan.row.endpoint_id, f"r{i}": plan.row.run_id, f"o{i}": plan.outcome})
    return _VERIFY_ENDPOINTS(len(plans)).run(conn, params).rowcount


def _siblings(n: int) -> sa.Executable:
    """The pending attempts of ``n`` (run, contact point, step) keys: an OR of their terms, not a
    row-value IN, so SQLite searches each in the (run, contact point, ...) unique index rather
    than every pending ping."""
    terms = [sa.and_(PT.c.run_id == sa.bindparam(f"k{i}_0"), PT.c.contact_point_id == sa.bindparam(f"k{i}_1"),
                     PT.c.step == sa.bindparam(f"k{i}_2"), PT.c.state == PingState.pending.value) for i in range(n)]
    return sa.select(PT.c.run_id, PT.c.contact_point_id, PT.c.step).where(sa.or_(*terms))


_pending_siblings = PerCount(_siblings)


def _response_of(row: Any, acked_at: datetime) -> int | None:
    start = row.delivered_at or row.sent_at or row.dispatching_at
    if start is None:
        return None
    return max(0, int((acked_at - start).total_seconds() * 1000))


def after_close(conn: sa.Connection, row: Any, at: datetime, *, method: str, actor: str, by: str | None,
                source: str | None) -> AckResult:
    """A closed run stays closed: the answer is kept (once per ping) and changes nothing."""
    run_status = str(row.run_status)
    earlier = conn.execute(sa.select(ET.c.at).where(ET.c.ping_id == row.id, ET.c.kind == ev.PING_ANSWER_AFTER_CLOSE)
                           .order_by(ET.c.id).limit(1)).scalar()
    if earlier is not None:
        return AckResult(row.id, row.run_id, "after_close", False, False, None, earlier, run_status)
    conn.execute(ET.insert(), [_event_row(row, ev.PING_ANSWER_AFTER_CLOSE, at, actor, method=method, by=by,
                                          source=source, run_status=run_status)])
    log.info("run=%s ping=%s answered after the test closed (%s): recorded, nothing changed", row.run_id, row.id,
             run_status)
    return AckResult(row.id, row.run_id, "after_close", False, False, None, at, run_status)


def record_endpoint_outcomes(session: Session, run_id: int) -> None:
    """At run close: each endpoint the run used remembers its last outcome (one write per endpoint)."""
    rows = session.connection().execute(
        sa.select(PT.c.endpoint_id, PT.c.outcome, PT.c.settled_at, PT.c.simulated)
        .where(PT.c.run_id == run_id, PT.c.endpoint_id.is_not(None), PT.c.outcome.is_not(None))
        .order_by(PT.c.settled_at, PT.c.id)
    ).all()
    last: dict[int, tuple[str, datetime]] = {}
    for endpoint_id, outcome, settled_at, simulated in rows:
        if not simulated and outcome != Outcome.cancelled.value and settled_at is not None:
            last[int(endpoint_id)] = (str(outcome), settled_at)
    for endpoint_id, (outcome, at) in sorted(last.items()):
        session.connection().execute(
            EPT.update().where(EPT.c.id == endpoint_id, sa.or_(EPT.c.last_outcome_at.is_(None),
                                                               EPT.c.last_outcome_at <= at))
            .values(last_outcome=outcome, last_outcome_at=at)
        )


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
