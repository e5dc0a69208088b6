"""What follows silence — retries, the next endpoint, escalation — for many attempts at once.

Three steps, whatever the number of attempts that ended unanswered together:

1. **gather** the facts of every such attempt with one query per kind of fact (their runs,
   the other attempts of their contact points, the usable endpoints, the escalation targets);
2. **decide** each with the pure ``escalation.next_moves``, in memory;
3. **apply** every move in one write: the new attempts in one INSERT, their events in another.

It works on the caller's connection and transaction (the deadline decisions of the engine,
a provider's report, a failed send), so a decision and its follow-up commit together.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from commtest import events as ev
from commtest.masking import mask_address
from commtest.models import ContactPoint, Event, FieldOfWork, Outcome, Ping, PingState, RunStatus, TestRun
from commtest.settings import Settings
from playbooks.schema import PlaybookSpec, StepSpec
from scheduler.bulk import insert_rows
from scheduler.escalation import Silence, next_moves
from scheduler.planner import Target, UsableEndpoint, targets_of, usable_endpoints_of
from scheduler.specs import spec_for_revision_id

PT = Ping.__table__  # type: ignore[attr-defined]
RT = TestRun.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]
CP = ContactPoint.__table__  # type: ignore[attr-defined]
FW = FieldOfWork.__table__  # type: ignore[attr-defined]

# The columns of an ended attempt that the follow-up needs (``ENDED_COLUMNS`` in a RETURNING).
ENDED_COLUMNS = (PT.c.id, PT.c.run_id, PT.c.contact_point_id, PT.c.organisation_code, PT.c.channel, PT.c.step,
                 PT.c.step_attempt, PT.c.endpoint_id, PT.c.outcome, PT.c.language)


@dataclass(frozen=True)
class Ended:
    """One attempt that ended without an answer (expired, failed, busy, voicemail...)."""

    ping_id: int
    run_id: int
    contact_point_id: int
    organisation_code: str
    channel: str
    step: str
    step_attempt: int
    endpoint_id: int | None
    outcome: str
    language: str

    @classmethod
    def of(cls, row: Any) -> Ended:
        return cls(row.id, row.run_id, row.contact_point_id, row.organisation_code, row.channel, row.step,
                   row.step_attempt, row.endpoint_id, row.outcome or Outcome.unknown.value, row.language)


@dataclass
class _Facts:
    run_status: dict[int, str]
    specs: dict[int, PlaybookSpec]  # by run
    answered: set[tuple[int, int, str]]  # (run, contact point, step) with an acknowledged attempt
    pinged: dict[tuple[int, int, str], set[int | None]]  # (run, contact point, step) -> endpoints tried
    failed_in_row: dict[tuple[int, int, str], int]  # (run, contact point, step) -> last attempts failed on our side
    last_attempt: dict[tuple[int, int, str], int]  # (run, contact point, channel) -> highest attempt
    endpoints: dict[tuple[int, str], list[UsableEndpoint]]
    contact: dict[int, tuple[str, str]]  # contact point -> (code, field code)
    targets: dict[tuple[str, str], list[Target]]


@dataclass
class FollowUps:
    """What the follow-up planned: the new attempts (when each is due), for the caller's timers."""

    planned: int = 0
    due: list[datetime] = field(default_factory=list)


def follow_up(s: Session, ping: Ping, now: datetime, settings: Settings, actor: str) -> FollowUps:
    """The follow-up of one attempt, in the caller's ORM session (a failed send, a provider's
    report). Pending ORM changes are flushed first, so the event log keeps its order."""
    s.flush()
    return follow_up_many(s.connection(), [Ended.of(ping)], now, settings, actor)


def follow_up_many(conn: sa.Connection, ended: Sequence[Ended], now: datetime, settings: Settings,
                   actor: str) -> FollowUps:
    """Retry, try the next endpoint or escalate after each of ``ended``, as the playbook says."""
    out = FollowUps()
    if not ended:
        return out
    facts = _gather(conn, ended)
    pings: list[dict[str, Any]] = []
    notes: list[tuple[Ended, str, dict[str, Any]]] = []  # (ended, event kind, data) once ids are known
    gaps: list[dict[str, Any]] = []
    for e in ended:
        _decide(e, facts, now, settings, actor, pings, notes, gaps)
    if pings:
        rows = [{k: v for k, v in row.items() if not k.startswith("_")} for row in pings]
        ids = conn.execute(PT.insert().returning(PT.c.id, sort_by_parameter_order=True), rows).scalars().all()
        for row, new_id in zip(pings, ids, strict=True):
            row["id"] = new_id
    events: list[dict[str, Any]] = []
    for row in pings:
        events.append(_event(now, actor, ev.PING_PLANNED, row["run_id"], row["id"], row["organisation_code"],
                             row["channel"], contact_point_id=row["contact_point_id"],
                             contact_point=row["_cp_code"], field=row["_field"], step=row["step"],
                             attempt=row["attempt"], step_attempt=row["step_attempt"],
                             endpoint_id=row["endpoint_id"], address=mask_address(row["address"]),
                             due_at=row["due_at"]))
    for e, kind, data in notes:
        new = data.pop("_new")
        if kind == ev.PING_RETRY:
            data.update(next_ping=new["id"], next_attempt=new["attempt"])
        else:
            data["next_ping"] = new["id"]
        events.append(_event(now, actor, kind, e.run_id, e.ping_id, e.organisation_code, e.channel, **data))
    events.extend(gaps)
    if events:
        insert_rows(conn, ET, events)
    out.planned = len(pings)
    out.due = [row["due_at"] for row in pings]
    return out


# -- 1. gather ------------------------------------------------------------------------------------

def _gather(conn: sa.Connection, ended: Sequence[Ended]) -> _Facts:
    run_ids = {e.run_id for e in ended}
    runs = conn.execute(sa.select(RT.c.id, RT.c.status, RT.c.revision_id).where(RT.c.id.in_(run_ids))).all()
    run_status = {r.id: r.status for r in runs}
    specs = {r.id: spec_for_revision_id(conn, r.revision_id) for r in runs}
    contact = {r.id: (r.code, r.field_code) for r in conn.execute(
        sa.select(CP.c.id, CP.c.code, FW.c.code.label("field_code")).join(FW, FW.c.id == CP.c.field_id)
        .where(CP.c.id.in_({e.contact_point_id for e in ended}))
    ).all()}
    # Escalations to another field of work ping that field's contact points of the same organisation.
    pairs: set[tuple[str, str]] = set()
    for e in ended:
        spec = specs.get(e.run_id)
        esc = spec.escalation_of(spec.step(e.step)) if spec is not None else None
        if esc is not None and esc.field:
            pairs.add((e.organisation_code, esc.field))
    default_language = next(iter(specs.values())).default_language if specs else "en"
    targets = targets_of(conn, pairs, default_language) if pairs else {}
    cps = {e.contact_point_id for e in ended} | {t.contact_point_id for ts in targets.values() for t in ts}
    answered: set[tuple[int, int, str]] = set()
    pinged: dict[tuple[int, int, str], set[int | None]] = {}
    last_attempt: dict[tuple[int, int, str], int] = {}
    failed_in_row: dict[tuple[int, int, str], int] = {}
    for r in conn.execute(
        sa.select(PT.c.run_id, PT.c.contact_point_id, PT.c.step, PT.c.channel, PT.c.endpoint_id, PT.c.attempt,
                  PT.c.state, PT.c.outcome)
        .where(PT.c.run_id.in_(run_ids), PT.c.contact_point_id.in_(cps))
        .order_by(PT.c.attempt)
    ).all():
        key = (r.run_id, r.contact_point_id, r.step)
        pinged.setdefault(key, set()).add(r.endpoint_id)
        if r.state == PingState.acked.value:
            answered.add(key)
        ckey = (r.run_id, r.contact_point_id, r.channel)
        last_attempt[ckey] = max(last_attempt.get(ckey, 0), r.attempt)
        if r.outcome is not None:  # the backoff grows with the failures on our side in a row
            failed_in_row[key] = failed_in_row.get(key, 0) + 1 if r.outcome == Outcome.provider_failure.value else 0
    return _Facts(run_status, specs, answered, pinged, failed_in_row, last_attempt, usable_endpoints_of(conn, cps),
                  contact, targets)


# -- 2. decide (and 3. stage the writes) ----------------------------------------------------------

def _decide(e: Ended, f: _Facts, now: datetime, settings: Settings, actor: str, pings: list[dict[str, Any]],
            notes: list[tuple[Ended, str, dict[str, Any]]], gaps: list[dict[str, Any]]) -> None:
    if f.run_status.get(e.run_id) != RunStatus.running.value:
        return  # a closed run stays closed
    if (e.run_id, e.contact_point_id, e.step) in f.answered:
        return  # the contact point answered this step (perhaps late, on another attempt): nothing more
    spec = f.specs[e.run_id]
    step = spec.step(e.step)
    tried = f.pinged.setdefault((e.run_id, e.contact_point_id, e.step), set())
    endpoints = f.endpoints.get((e.contact_point_id, step.channel), [])
    fresh = [ep for ep in endpoints if ep.id not in tried]
    in_row = max(1, f.failed_in_row.get((e.run_id, e.contact_point_id, e.step), 1))
    moves = next_moves(spec, Silence(step.id, e.step_attempt, Outcome(e.outcome), bool(fresh), in_row), now)
    cp_code, field_code = f.contact.get(e.contact_point_id, ("", ""))
    if moves.retry_at is not None:
        ep: UsableEndpoint | None
        if moves.next_endpoint:
            ep, step_attempt = fresh[0], e.step_attempt
        else:
            ep = next((x for x in endpoints if x.id == e.endpoint_id), endpoints[0] if endpoints else None)
            step_attempt = e.step_attempt + 1
        if ep is not None:
            new = _stage(f, pings, e.run_id, e.contact_point_id, e.organisation_code, e.language, step, ep,
                         moves.retry_at, step_attempt, e.ping_id, cp_code, field_code, settings)
            tried.add(ep.id)
            notes.append((e, ev.PING_RETRY, {"_new": new, "due_at": moves.retry_at, "reason": e.outcome}))
    if moves.escalate is None:
        return
    esc = moves.escalate
    to_step = spec.step(esc.step) if esc.step else step
    if esc.field:
        targets: Iterable[Target] = f.targets.get((e.organisation_code, esc.field), [])
    else:
        targets = [Target(e.contact_point_id, cp_code, "", e.organisation_code, "", field_code, e.language, "")]
    for t in targets:
        key = (e.run_id, t.contact_point_id, to_step.id)
        if key in f.pinged:
            continue  # never escalate into a loop
        if not to_step.pings(t.organisation_code):
            continue  # a step that names its participants pings no one else
        eps = f.endpoints.get((t.contact_point_id, to_step.channel), [])
        if not eps:
            gaps.append(_event(now, actor, ev.RUN_GAP, e.run_id, None, t.organisation_code, to_step.channel,
                               contact_point=t.contact_point_code, field=t.field_code, step=to_step.id,
                               reason=f"escalation found no usable {to_step.channel} endpoint"))
            continue
        new = _stage(f, pings, e.run_id, t.contact_point_id, t.organisation_code, t.language, to_step, eps[0], now,
                     1, e.ping_id, t.contact_point_code, t.field_code, settings)
        f.pinged[key] = {eps[0].id}
        notes.append((e, ev.PING_ESCALATED, {"_new": new, "to_step": to_step.id,
                                             "to_contact_point": t.contact_point_code}))


def _stage(f: _Facts, pings: list[dict[str, Any]], run_id: int, contact_point_id: int, organisation_code: str,
           language: str, step: StepSpec, ep: UsableEndpoint, due_at: datetime, step_attempt: int,
           escalated_from: int, cp_code: str, field_code: str, settings: Settings) -> dict[str, Any]:
    ckey = (run_id, contact_point_id, step.channel)
    attempt = f.last_attempt.get(ckey, 0) + 1
    f.last_attempt[ckey] = attempt
    row = {
        "run_id": run_id, "contact_point_id": contact_point_id, "endpoint_id": ep.id,
        "organisation_code": organisation_code, "channel": step.channel,
        "provider": settings.primary_provider(step.channel), "address": ep.address, "language": language,
        "step": step.id, "attempt": attempt, "step_attempt": step_attempt, "escalated_from_id": escalated_from,
        "state": PingState.pending.value, "due_at": due_at, "ack_suspicious": False, "simulated": False,
        "_cp_code": cp_code, "_field": field_code,
    }
    pings.append(row)
    return row


def _event(at: datetime, actor: str, kind: str, run_id: int | None, ping_id: int | None,
           organisation_code: str | None, channel: str | None, **data: Any) -> dict[str, Any]:
    return {"at": at, "actor": actor, "kind": kind, "run_id": run_id, "ping_id": ping_id,
            "organisation_code": organisation_code, "channel": channel, "outcome": None, "response_ms": None,
            "data": {k: ev.jsonable(v) for k, v in data.items()}}
