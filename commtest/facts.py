"""Checks and verdicts, derived from a run's event log alone (ARCHITECTURE.md, "Checks and attempts").

A **check** is one (run, contact point, channel): "did this centre's desk answer the
phone?". Its **attempts** are the pings sent for it (retries, later endpoints). Its
response time runs from the first sent attempt's first contact (ringing or delivered
when the provider reports it, else sent) to the answer. Attempts never sent (cancelled,
withdrawn) never count. The **verdict** of an organisation on a channel follows the
playbook's ``answer: any|all``.

``derive_run`` is a pure function of the run's events (plus the immutable identity of its
pings): the test report, ``runs show`` and the console call it on a running run, and
``write_run_facts`` stores its result once when the run closes, in ``check_fact`` and
``verdict_fact``, which the monthly report aggregates. ``commtest db rebuild-facts``
recomputes every closed run the same way, and ``report verify`` compares.

An answer recorded after the run closed (``ping.answer_after_close``) is not an answer
here: a closed run stays closed.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from commtest import events as ev
from commtest.clock import parse_instant
from commtest.models import CheckFact, Event, Outcome, Ping, RunStatus, TestRun, VerdictFact

E = Event.__table__  # type: ignore[attr-defined]
P = Ping.__table__  # type: ignore[attr-defined]
R = TestRun.__table__  # type: ignore[attr-defined]
CF = CheckFact.__table__  # type: ignore[attr-defined]
VF = VerdictFact.__table__  # type: ignore[attr-defined]

ANSWERED = (Outcome.acked.value, Outcome.acked_late.value, Outcome.manual.value, Outcome.self_reported.value)
# A check that was not answered takes the most telling outcome of its attempts, in this order:
# first what the centre's side did (machine, out of office, busy...), then what failed on ours.
UNANSWERED_RANK = tuple(o.value for o in (
    Outcome.voicemail, Outcome.away, Outcome.busy, Outcome.no_answer, Outcome.delivered_no_ack, Outcome.no_record,
    Outcome.blocked, Outcome.bounced, Outcome.invalid_endpoint, Outcome.aborted, Outcome.provider_failure,
    Outcome.template_error, Outcome.unknown, Outcome.cancelled,
))
# Outcomes that say something about the centre's endpoint even though nothing was sent.
ENDPOINT_FAULTS = (Outcome.bounced.value, Outcome.invalid_endpoint.value, Outcome.blocked.value)
OUR_SIDE = (Outcome.provider_failure.value, Outcome.template_error.value, Outcome.unknown.value)
CLOSING_KINDS = (ev.RUN_COMPLETED, ev.RUN_ABORTED, ev.RUN_MISSED)

# Check statuses: counted ones first.
PASS, FAIL, PENDING, NOT_TESTED, CANCELLED, ABORTED, NO_ENDPOINT = (
    "pass", "fail", "pending", "not_tested", "cancelled", "aborted", "no_endpoint")
COUNTED = (PASS, FAIL)


@dataclass(frozen=True)
class FactRules:
    """What the playbook revision says that the figures depend on."""

    targets_ms: Mapping[str, int] = field(default_factory=dict)
    answer: Mapping[str, str] = field(default_factory=dict)  # organisation code -> any | all
    default_answer: str = "any"
    participants: tuple[str, ...] = ()
    # (organisation, channel) pairs a run checks from its start: without an attempt, "no endpoint".
    needed: tuple[tuple[str, str], ...] = ()

    def answer_of(self, organisation: str) -> str:
        return self.answer.get(organisation, self.default_answer)


@dataclass(frozen=True)
class EventRow:
    id: int
    at: datetime
    kind: str
    ping_id: int | None
    organisation_code: str | None
    channel: str | None
    outcome: str | None
    data: Mapping[str, Any]


@dataclass(frozen=True)
class PingIdentity:
    """What never changes about a ping once planned."""

    id: int
    contact_point_id: int
    organisation_code: str
    channel: str
    attempt: int
    endpoint_id: int | None
    address: str


@dataclass
class _Attempt:
    ident: PingIdentity
    contact_point_code: str = ""
    field_code: str = ""
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    deadline_at: datetime | None = None
    provider: str = ""
    simulated: bool = False
    outcome: str | None = None
    detail: str = ""
    answer: EventRow | None = None


@dataclass(frozen=True)
class Check:
    run_id: int
    organisation_code: str
    contact_point_id: int
    contact_point_code: str
    field_code: str
    channel: str
    attempts_planned: int
    attempts_sent: int
    first_contact_at: datetime | None
    answered_at: datetime | None
    response_ms: int | None
    outcome: str
    status: str
    method: str | None
    answered_by: str | None
    late: bool
    suspicious: bool
    simulated: bool
    target_ms: int | None
    endpoint_id: int | None
    address: str
    provider: str
    detail: str

    @property
    def answered(self) -> bool:
        return self.outcome in ANSWERED

    @property
    def counted(self) -> bool:
        return self.status in COUNTED


@dataclass(frozen=True)
class Verdict:
    run_id: int
    organisation_code: str
    channel: str
    verdict: str
    answer: str
    checks: int
    answered: int
    in_target: int
    gaps: int
    response_ms: int | None
    target_ms: int | None
    simulated: bool


@dataclass(frozen=True)
class RunFacts:
    run_id: int
    checks: list[Check]
    verdicts: list[Verdict]


def derive_run(
    run_id: int,
    run_status: str,
    events: Sequence[EventRow],
    pings: Mapping[int, PingIdentity],
    rules: FactRules,
) -> RunFacts:
    """The checks and verdicts of one run from its events (ordered by id)."""
    closed_at_id = next((e.id for e in events if e.kind in CLOSING_KINDS), None)
    attempts: dict[int, _Attempt] = {}
    gaps: dict[tuple[str, str], int] = defaultdict(int)
    for e in events:
        if e.kind == ev.RUN_GAP:
            org = e.organisation_code or e.data.get("organisation_code")
            channel = e.channel or e.data.get("channel")
            if org and channel:
                gaps[(str(org), str(channel))] += 1
            continue
        if e.ping_id is None or e.ping_id not in pings:
            continue
        a = attempts.get(e.ping_id)
        if a is None:
            a = attempts[e.ping_id] = _Attempt(pings[e.ping_id])
        _apply(a, e, closed_at_id)
    by_check: dict[tuple[int, str], list[_Attempt]] = defaultdict(list)
    for a in attempts.values():
        by_check[(a.ident.contact_point_id, a.ident.channel)].append(a)
    running = run_status in (RunStatus.running.value, RunStatus.planned.value)
    aborted = run_status == RunStatus.aborted.value
    checks = [
        _check(run_id, sorted(items, key=lambda x: (x.ident.attempt, x.ident.id)), rules, running, aborted)
        for _, items in sorted(by_check.items(), key=lambda kv: (kv[1][0].ident.organisation_code,
                                                                  kv[1][0].contact_point_code, kv[0][1]))
    ]
    return RunFacts(run_id, checks, derive_verdicts(run_id, checks, gaps, rules))


def _apply(a: _Attempt, e: EventRow, closed_at_id: int | None) -> None:
    data = e.data
    if e.kind == ev.PING_PLANNED:
        a.contact_point_code = str(data.get("contact_point") or a.contact_point_code)
        a.field_code = str(data.get("field") or a.field_code)
    elif e.kind == ev.PING_SENT:
        a.sent_at = a.sent_at or e.at
        deadline = data.get("deadline_at")
        a.deadline_at = parse_instant(deadline) if isinstance(deadline, str) else a.deadline_at
        a.provider = str(data.get("provider") or a.provider)
        a.simulated = a.simulated or bool(data.get("simulated"))
    elif e.kind == ev.PING_DELIVERED:
        a.delivered_at = a.delivered_at or e.at
    elif e.kind == ev.PING_ACKED:
        if a.answer is None and (closed_at_id is None or e.id < closed_at_id):
            a.answer = e
            a.simulated = a.simulated or bool(data.get("simulated"))
    elif e.kind == ev.PING_SETTLED:
        if e.outcome not in ANSWERED or a.answer is not None:
            a.outcome = e.outcome
            a.detail = str(data.get("reason") or "")[:1000]


def _check(run_id: int, items: list[_Attempt], rules: FactRules, running: bool, aborted: bool) -> Check:
    first = items[0]
    channel = first.ident.channel
    org = first.ident.organisation_code
    target = rules.targets_ms.get(channel)
    sent = [a for a in items if a.sent_at is not None]
    # Ringing (or delivered) is the first contact where the provider reports it: Twilio queues
    # calls, so the API call's time says nothing about the centre.
    contact = min(((a.delivered_at or a.sent_at) for a in sent), default=None)
    answer_attempt = min((a for a in items if a.answer is not None), key=lambda a: a.answer.id, default=None)  # type: ignore[union-attr]
    simulated = any(a.simulated for a in sent) or (answer_attempt is not None and answer_attempt.simulated)
    if answer_attempt is not None and answer_attempt.answer is not None:
        ans = answer_attempt.answer
        start = contact or answer_attempt.sent_at
        response = max(0, int((ans.at - start).total_seconds() * 1000)) if start is not None else None
        method = str(ans.data.get("method") or "")
        late = bool(ans.data.get("late"))
        if method.startswith("manual"):
            outcome = Outcome.manual.value
        elif method == "self-reported":
            outcome = Outcome.self_reported.value
        else:
            outcome = Outcome.acked_late.value if late else Outcome.acked.value
        in_target = (not late) if target is None else (response is not None and response <= target)
        return Check(
            run_id, org, first.ident.contact_point_id, first.contact_point_code, first.field_code, channel,
            len(items), len(sent), contact, ans.at, response, outcome, PASS if in_target else FAIL, method or None,
            (str(ans.data.get("by")) if ans.data.get("by") else None), late, bool(ans.data.get("suspicious")),
            simulated, target, answer_attempt.ident.endpoint_id, answer_attempt.ident.address,
            answer_attempt.provider, "",
        )
    outcomes = [a.outcome for a in items if a.outcome]
    outcome = next((o for o in UNANSWERED_RANK if o in outcomes), outcomes[-1] if outcomes else "")
    open_attempts = any(a.outcome is None for a in items)
    tested = bool(sent) or any(o in ENDPOINT_FAULTS for o in outcomes)
    last = items[-1]
    if running and open_attempts:
        status = PENDING
    elif aborted and (last.outcome in (Outcome.aborted.value, Outcome.cancelled.value) or open_attempts):
        status = ABORTED
        outcome = outcome if tested and outcome != Outcome.cancelled.value else Outcome.aborted.value
    elif tested:
        status = FAIL
    elif outcomes and all(o == Outcome.cancelled.value for o in outcomes):
        status = CANCELLED
    else:
        status = NOT_TESTED
    shown = next((a for a in reversed(items) if a.sent_at is not None), last)
    return Check(
        run_id, org, first.ident.contact_point_id, first.contact_point_code, first.field_code, channel,
        len(items), len(sent), contact, None, None, outcome or "", status, None, None, False, False, simulated,
        target, shown.ident.endpoint_id, shown.ident.address, shown.provider,
        next((a.detail for a in reversed(items) if a.detail), ""),
    )


def derive_verdicts(run_id: int, checks: Sequence[Check], gaps: Mapping[tuple[str, str], int],
                    rules: FactRules) -> list[Verdict]:
    grouped: dict[tuple[str, str], list[Check]] = defaultdict(list)
    for c in checks:
        grouped[(c.organisation_code, c.channel)].append(c)
    keys = set(grouped) | set(gaps) | set(rules.needed)
    out = []
    for org, channel in sorted(keys):
        items = grouped.get((org, channel), [])
        n_gaps = gaps.get((org, channel), 0)
        answer = rules.answer_of(org)
        statuses = [c.status for c in items]
        answered = [c for c in items if c.answered]
        if not items:
            verdict = NO_ENDPOINT
        elif answer == "all":
            if PENDING in statuses:
                verdict = PENDING
            elif n_gaps or FAIL in statuses:
                verdict = FAIL
            elif all(s == PASS for s in statuses):
                verdict = PASS
            else:
                verdict = _uncounted(statuses)
        elif PASS in statuses:
            verdict = PASS
        elif PENDING in statuses:
            verdict = PENDING
        elif FAIL in statuses:
            verdict = FAIL
        else:
            verdict = _uncounted(statuses)
        times = [c.response_ms for c in answered if c.response_ms is not None]
        response = (max(times) if answer == "all" else min(times)) if times else None
        out.append(Verdict(
            run_id, org, channel, verdict, answer, len(items), len(answered),
            sum(1 for c in items if c.status == PASS), n_gaps, response, rules.targets_ms.get(channel),
            any(c.simulated for c in items),
        ))
    return out


def _uncounted(statuses: Iterable[str]) -> str:
    statuses = list(statuses)
    if ABORTED in statuses:
        return ABORTED
    if NOT_TESTED in statuses:
        return NOT_TESTED
    return CANCELLED


# --------------------------------------------------------------------------- reading and writing


def load_run_events(conn: sa.Connection, run_id: int) -> tuple[list[EventRow], dict[int, PingIdentity]]:
    rows = conn.execute(
        sa.select(E.c.id, E.c.at, E.c.kind, E.c.ping_id, E.c.organisation_code, E.c.channel, E.c.outcome, E.c.data)
        .where(E.c.run_id == run_id)
        .order_by(E.c.id)
    ).all()
    events = [EventRow(r.id, r.at, r.kind, r.ping_id, r.organisation_code, r.channel, r.outcome, r.data or {})
              for r in rows]
    pings = {
        r.id: PingIdentity(r.id, r.contact_point_id, r.organisation_code, r.channel, r.attempt, r.endpoint_id, r.address)
        for r in conn.execute(
            sa.select(P.c.id, P.c.contact_point_id, P.c.organisation_code, P.c.channel, P.c.attempt, P.c.endpoint_id,
                      P.c.address).where(P.c.run_id == run_id)
        )
    }
    return events, pings


def facts_of_run(conn: sa.Connection, run_id: int, rules: FactRules) -> RunFacts:
    status = conn.execute(sa.select(R.c.status).where(R.c.id == run_id)).scalar_one()
    events, pings = load_run_events(conn, run_id)
    return derive_run(run_id, status, events, pings, rules)


def write_run_facts(session: Session, facts: RunFacts, fire_at: datetime) -> None:
    """Store a closed run's checks and verdicts (replacing any earlier rows of the run)."""
    conn = session.connection()
    conn.execute(CF.delete().where(CF.c.run_id == facts.run_id))
    conn.execute(VF.delete().where(VF.c.run_id == facts.run_id))
    if facts.checks:
        conn.execute(CF.insert(), [_check_row(c, fire_at) for c in facts.checks])
    if facts.verdicts:
        conn.execute(VF.insert(), [_verdict_row(v, fire_at) for v in facts.verdicts])


def _check_row(c: Check, fire_at: datetime) -> dict[str, Any]:
    return {
        "run_id": c.run_id, "fire_at": fire_at, "organisation_code": c.organisation_code,
        "contact_point_id": c.contact_point_id, "contact_point_code": c.contact_point_code,
        "field_code": c.field_code, "channel": c.channel, "attempts_planned": c.attempts_planned,
        "attempts_sent": c.attempts_sent, "first_contact_at": c.first_contact_at, "answered_at": c.answered_at,
        "response_ms": c.response_ms, "outcome": c.outcome, "status": c.status, "method": c.method,
        "answered_by": (c.answered_by or None) and c.answered_by[:200], "late": c.late, "suspicious": c.suspicious,
        "simulated": c.simulated, "target_ms": c.target_ms, "endpoint_id": c.endpoint_id,
        "address": c.address[:320], "provider": c.provider[:32], "detail": c.detail[:1000],
    }


def _verdict_row(v: Verdict, fire_at: datetime) -> dict[str, Any]:
    return {
        "run_id": v.run_id, "fire_at": fire_at, "organisation_code": v.organisation_code, "channel": v.channel,
        "verdict": v.verdict, "answer": v.answer, "checks": v.checks, "answered": v.answered,
        "in_target": v.in_target, "gaps": v.gaps, "best_response_ms": v.response_ms, "target_ms": v.target_ms,
        "simulated": v.simulated,
    }


def stored_facts(conn: sa.Connection, run_id: int) -> RunFacts:
    """What ``write_run_facts`` stored for a run, as the same values ``derive_run`` gives."""
    checks = [
        Check(r.run_id, r.organisation_code, r.contact_point_id, r.contact_point_code, r.field_code, r.channel,
              r.attempts_planned, r.attempts_sent, r.first_contact_at, r.answered_at, r.response_ms, r.outcome,
              r.status, r.method, r.answered_by, r.late, r.suspicious, r.simulated, r.target_ms, r.endpoint_id,
              r.address, r.provider, r.detail)
        for r in conn.execute(sa.select(CF).where(CF.c.run_id == run_id).order_by(CF.c.id))
    ]
    verdicts = [
        Verdict(r.run_id, r.organisation_code, r.channel, r.verdict, r.answer, r.checks, r.answered, r.in_target,
                r.gaps, r.best_response_ms, r.target_ms, r.simulated)
        for r in conn.execute(sa.select(VF).where(VF.c.run_id == run_id).order_by(VF.c.id))
    ]
    return RunFacts(run_id, checks, verdicts)


def normalised(facts: RunFacts) -> RunFacts:
    """Facts with the same truncation the table applies, so stored and derived compare equal."""
    return replace(facts, checks=[
        replace(c, answered_by=(c.answered_by or None) and c.answered_by[:200], address=c.address[:320],
                provider=c.provider[:32], detail=c.detail[:1000])
        for c in facts.checks
    ])


__all__ = [
    "ANSWERED",
    "Check",
    "EventRow",
    "FactRules",
    "PingIdentity",
    "RunFacts",
    "Verdict",
    "derive_run",
    "derive_verdicts",
    "facts_of_run",
    "load_run_events",
    "normalised",
    "stored_facts",
    "write_run_facts",
]
