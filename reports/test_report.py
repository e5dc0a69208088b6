"""The test report of one run: what matters first.

1. an executive summary (one sentence, then the organisation × channel matrix);
2. the action points, following from the facts;
3. the checks (one per contact point and channel) and their attempts;
4. the full timeline, as an appendix.

``build_test_report`` reads the run's event log (plus the immutable identity of its pings and
the names in the directory) and derives the checks and verdicts with ``commtest.facts``, the
same function that stored them when the run closed. What depends on the directory *now*
(endpoints not proven for a long time) is kept apart in ``directory_state``: it is not part of
the log, so ``report verify`` does not compare it. ``write_test_report`` renders it.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from commtest import events as ev
from commtest.clock import Clock, SystemClock, parse_instant
from commtest.errors import NotFoundError
from commtest.facts import Check, EventRow, derive_run, load_run_events
from commtest.masking import mask_in_text
from commtest.models import (
    CheckFact,
    ContactPoint,
    Endpoint,
    FieldOfWork,
    Organisation,
    Outcome,
    PlaybookRevision,
    RunStatus,
)
from reports.playbook_facts import playbook_facts
from reports.queries import P, R

CP = ContactPoint.__table__  # type: ignore[attr-defined]
FW = FieldOfWork.__table__  # type: ignore[attr-defined]
EP = Endpoint.__table__  # type: ignore[attr-defined]
ORG = Organisation.__table__  # type: ignore[attr-defined]
REV = PlaybookRevision.__table__  # type: ignore[attr-defined]
CF = CheckFact.__table__  # type: ignore[attr-defined]

DEFINITIONS = (
    "A check is one contact point on one channel; its attempts are the pings sent for it. Response time runs from "
    "the first attempt's first contact (ringing or delivery where the provider reports it, else sending) to the "
    "answer. Rates and times are over checks; attempts never sent do not count."
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunInfo(_Frozen):
    id: int
    playbook_id: str
    playbook_title: str
    playbook_titles: dict[str, str] = {}
    revision_id: int
    status: str
    trigger: str
    announced: bool
    fire_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    abort_reason: str = ""


class Summary(_Frozen):
    organisations: int
    checks: int
    counted: int  # pass + fail: the checks that tested a centre
    passed: int
    failed: int
    not_tested: int
    answered: int
    simulated: int
    verdicts_pass: int
    verdicts_total: int


class MatrixCell(_Frozen):
    organisation: str
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


class CheckLine(_Frozen):
    organisation: str
    contact_point: str
    contact_point_code: str
    field: str
    channel: str
    status: str
    outcome: str
    attempts_sent: int
    attempts_planned: int
    first_contact_at: datetime | None
    answered_at: datetime | None
    response_ms: int | None
    target_ms: int | None
    method: str | None
    answered_by: str | None
    late: bool
    suspicious: bool
    simulated: bool
    address: str
    provider: str


class Attempt(_Frozen):
    ping_id: int
    organisation: str
    contact_point: str
    channel: str
    step: str
    attempt: int
    address: str
    provider: str
    planned_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    delivered_status: str | None
    acked_at: datetime | None
    method: str | None
    outcome: str | None
    suspicious: bool
    simulated: bool


class ActionPoint(_Frozen):
    # What to do about it is worded by the renderer, per kind, in the reader's language.
    kind: Literal["failed_check", "late_answer", "fix_endpoint", "check_endpoint", "voicemail", "possible_scanner",
                  "no_contact_point", "not_tested", "fix_template", "failed_before", "stale_endpoint", "unblock_number"]
    organisation: str
    field: str
    channel: str
    contact_point: str
    address: str
    outcome: str
    detail: str = ""
    # fix_template: the playbook step whose template failed, and that template's name
    step: str = ""
    template: str = ""


class LateAnswer(_Frozen):
    """An answer that came after the test had closed: listed, never counted."""

    ping_id: int
    organisation: str
    contact_point: str
    channel: str
    at: datetime
    method: str | None
    by: str | None
    run_status: str


class TimelineEntry(_Frozen):
    event_id: int
    at: datetime
    kind: str
    organisation: str | None
    channel: str | None
    contact_point: str | None
    outcome: str | None
    params: dict[str, Any]


class DirectoryChange(_Frozen):
    event_id: int
    at: datetime
    endpoint_id: int | None
    contact_point: str
    channel: str
    address: str
    change: str  # "verified" or "status:<suspect|invalid|active>"


class DirectoryState(_Frozen):
    """The directory as it stood when the report was generated (not from the log)."""

    generated_at: datetime
    stale_after_days: int
    action_points: list[ActionPoint]
    # code -> {"": name, "<lang>": name in that language}
    organisations: dict[str, dict[str, str]] = {}
    fields: dict[str, dict[str, str]] = {}


class TestReport(_Frozen):
    __test__ = False  # not a pytest class
    report: Literal["test"] = "test"
    run: RunInfo
    timezone: str
    definitions: str = DEFINITIONS
    simulated: bool
    summary: Summary
    matrix: list[MatrixCell]
    action_points: list[ActionPoint]
    checks: list[CheckLine]
    attempts: list[Attempt]
    answers_after_close: list[LateAnswer]
    outcome_counts: dict[str, int]
    timeline: list[TimelineEntry]
    directory_changes: list[DirectoryChange]
    directory_state: DirectoryState


def build_test_report(engine: Engine, run_id: int, *, clock: Clock | None = None,
                      stale_after_days: int = 180) -> TestReport:
    clock = clock or SystemClock()
    with engine.connect() as conn:
        run = conn.execute(
            sa.select(R, REV.c.source_text).join(REV, REV.c.id == R.c.revision_id).where(R.c.id == run_id)
        ).first()
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist; `commtest runs list` shows the runs")
        facts = playbook_facts(run.source_text, revision_id=run.revision_id)
        events, pings = load_run_events(conn, run_id)
        derived = derive_run(run_id, run.status, events, pings, facts.rules)
        names = _names(conn, {p.contact_point_id for p in pings.values()}, facts.participants)
        attempts = _attempts(conn, run_id, events)
        earlier = _failed_before(conn, run_id, run.fire_at, derived.checks)
        state = _directory_state(conn, facts.participant_fields, clock.now(), stale_after_days, names)
    checks = [_check_line(c, names) for c in derived.checks]
    matrix = [
        MatrixCell(
            organisation=v.organisation_code, channel=v.channel, verdict=v.verdict,
            answer=v.answer, checks=v.checks, answered=v.answered, in_target=v.in_target, gaps=v.gaps,
            response_ms=v.response_ms, target_ms=v.target_ms, simulated=v.simulated,
        )
        for v in derived.verdicts
    ]
    closing = next((e for e in events if e.kind in (ev.RUN_ABORTED, ev.RUN_REFUSED)), None)
    info = RunInfo(
        id=run.id, playbook_id=run.playbook_id, playbook_title=facts.title, playbook_titles=facts.titles,
        revision_id=run.revision_id, status=run.status, trigger=run.trigger, announced=run.announced,
        fire_at=run.fire_at, started_at=run.started_at, finished_at=run.finished_at,
        abort_reason=str(closing.data.get("reason") or "") if closing else "",
    )
    counts: dict[str, int] = {}
    for c in derived.checks:
        counts[c.outcome] = counts.get(c.outcome, 0) + 1
    points = _action_points(derived.checks, events, names, earlier, _failed_steps(events, pings, facts))
    said = {(p.kind, p.organisation, p.channel, p.address) for p in points}
    state = state.model_copy(update={"action_points": [
        p for p in state.action_points if (p.kind, p.organisation, p.channel, p.address) not in said]})
    return TestReport(
        run=info,
        timezone=facts.timezone,
        simulated=any(c.simulated for c in derived.checks),
        summary=Summary(
            organisations=len({c.organisation_code for c in derived.checks} | set(facts.participants)),
            checks=len(checks), counted=sum(1 for c in derived.checks if c.counted),
            passed=sum(1 for c in derived.checks if c.status == "pass"),
            failed=sum(1 for c in derived.checks if c.status == "fail"),
            not_tested=sum(1 for c in derived.checks if c.status == "not_tested"),
            answered=sum(1 for c in derived.checks if c.answered),
            simulated=sum(1 for c in derived.checks if c.simulated),
            verdicts_pass=sum(1 for v in derived.verdicts if v.verdict == "pass"),
            verdicts_total=len(derived.verdicts),
        ),
        matrix=matrix,
        action_points=points,
        checks=checks,
        attempts=attempts,
        answers_after_close=_late_answers(events, pings, names),
        outcome_counts=dict(sorted(counts.items())),
        timeline=_timeline(events, names, pings, facts.step_channels),
        directory_changes=_directory_changes(conn_free_endpoints(engine, events), events),
        directory_state=state,
    )


# --------------------------------------------------------------------------- names


class _Names:
    def __init__(self) -> None:
        self.cp_name: dict[int, str] = {}
        self.cp_code: dict[int, str] = {}
        self.cp_field: dict[int, str] = {}
        self.orgs: dict[str, str] = {}
        self.org_names: dict[str, dict[str, str]] = {}
        self.by_code: dict[str, str] = {}

    def org_name(self, code: str) -> str:
        return self.orgs.get(code, code)


def _names(conn: sa.Connection, cp_ids: set[int], participants: tuple[str, ...]) -> _Names:
    out = _Names()
    if cp_ids:
        for r in conn.execute(
            sa.select(CP.c.id, CP.c.code, CP.c.name, FW.c.code.label("field"))
            .join(FW, FW.c.id == CP.c.field_id).where(CP.c.id.in_(cp_ids))
        ):
            out.cp_name[r.id], out.cp_code[r.id], out.cp_field[r.id] = r.name, r.code, r.field
            out.by_code[r.code] = r.name
    for r in conn.execute(sa.select(ORG.c.code, ORG.c.name, ORG.c.names)):
        out.orgs[r.code] = r.name
        out.org_names[r.code] = dict(r.names or {})
    return out


def _check_line(c: Check, names: _Names) -> CheckLine:
    return CheckLine(
        organisation=c.organisation_code, contact_point=names.cp_name.get(c.contact_point_id, c.contact_point_code),
        contact_point_code=c.contact_point_code or names.cp_code.get(c.contact_point_id, ""),
        field=c.field_code or names.cp_field.get(c.contact_point_id, ""), channel=c.channel, status=c.status,
        outcome=c.outcome, attempts_sent=c.attempts_sent, attempts_planned=c.attempts_planned,
        first_contact_at=c.first_contact_at, answered_at=c.answered_at, response_ms=c.response_ms,
        target_ms=c.target_ms, method=c.method, answered_by=c.answered_by, late=c.late, suspicious=c.suspicious,
        simulated=c.simulated, address=c.address, provider=c.provider,
    )


# --------------------------------------------------------------------------- attempts


def _attempts(conn: sa.Connection, run_id: int, events: list[EventRow]) -> list[Attempt]:
    rows = conn.execute(
        sa.select(P.c.id, P.c.organisation_code, P.c.channel, P.c.step, P.c.attempt, P.c.address, P.c.contact_point_id,
                  CP.c.name.label("cp_name"))
        .join(CP, CP.c.id == P.c.contact_point_id).where(P.c.run_id == run_id)
        .order_by(P.c.organisation_code, CP.c.code, P.c.channel, P.c.attempt, P.c.id)
    ).all()
    facts: dict[int, dict[str, Any]] = {r.id: {} for r in rows}
    for e in events:
        f = facts.get(e.ping_id or -1)
        if f is None:
            continue
        if e.kind == ev.PING_PLANNED:
            due = e.data.get("due_at")
            f.setdefault("planned_at", parse_instant(due) if isinstance(due, str) else e.at)
        elif e.kind == ev.PING_SENT:
            f.setdefault("sent_at", e.at)
            f["provider"] = e.data.get("provider") or ""
            f["simulated"] = bool(e.data.get("simulated")) or f.get("simulated", False)
        elif e.kind == ev.PING_DELIVERED:
            f.setdefault("delivered_at", e.at)
            f.setdefault("delivered_status", e.data.get("status"))
        elif e.kind == ev.PING_ACKED:
            f.setdefault("acked_at", e.at)
            f.setdefault("method", e.data.get("method"))
            f["suspicious"] = bool(e.data.get("suspicious"))
            f["simulated"] = bool(e.data.get("simulated")) or f.get("simulated", False)
        elif e.kind == ev.PING_SETTLED:
            f["outcome"] = e.outcome
    return [
        Attempt(
            ping_id=r.id, organisation=r.organisation_code, contact_point=r.cp_name, channel=r.channel, step=r.step,
            attempt=r.attempt, address=r.address, provider=facts[r.id].get("provider", ""),
            planned_at=facts[r.id].get("planned_at"), sent_at=facts[r.id].get("sent_at"),
            delivered_at=facts[r.id].get("delivered_at"), delivered_status=facts[r.id].get("delivered_status"),
            acked_at=facts[r.id].get("acked_at"), method=facts[r.id].get("method"),
            outcome=facts[r.id].get("outcome"), suspicious=facts[r.id].get("suspicious", False),
            simulated=facts[r.id].get("simulated", False),
        )
        for r in rows
    ]


# --------------------------------------------------------------------------- action points

_FAILED_KINDS = {
    "voicemail": "voicemail",
    "bounced": "fix_endpoint",
    "invalid_endpoint": "fix_endpoint",
    "blocked": "unblock_number",
}


def _action_points(checks: list[Check], events: list[EventRow], names: _Names,
                   earlier: dict[tuple[int, str], int],
                   failed_steps: dict[tuple[int, str], tuple[str, str]] | None = None) -> list[ActionPoint]:
    """Every failed check, bounce, invalid, suspect or blocked endpoint, voicemail, answer by a possible
    scanner, contact point missing, attempt failed on our side (a template that failed: which
    one, and its error), and an endpoint that failed in the previous run too — each naming
    organisation, field, endpoint and what to do."""
    points: dict[tuple[str, ...], ActionPoint] = {}
    failed_steps = failed_steps or {}

    def add(kind: str, org: str, field: str, channel: str, cp: str, address: str, outcome: str, detail: str = "",
            step: str = "", template: str = "") -> None:
        key = (kind, org, channel, cp, address)
        points.setdefault(key, ActionPoint(kind=kind, organisation=org, field=field, channel=channel,  # type: ignore[arg-type]
                                           contact_point=cp, address=address, outcome=outcome, detail=detail[:300],
                                           step=step, template=template))

    for c in checks:
        cp = names.cp_name.get(c.contact_point_id, c.contact_point_code)
        field = c.field_code or names.cp_field.get(c.contact_point_id, "")
        if c.status == "fail" and c.answered:
            add("late_answer", c.organisation_code, field, c.channel, cp, c.address, c.outcome,
                f"{c.response_ms or 0}/{c.target_ms or 0}")
        elif c.status == "fail":
            add(_FAILED_KINDS.get(c.outcome, "failed_check"), c.organisation_code, field, c.channel, cp, c.address,
                c.outcome)
            previous = earlier.get((c.contact_point_id, c.channel))
            if previous is not None:
                add("failed_before", c.organisation_code, field, c.channel, cp, c.address, c.outcome, str(previous))
        elif c.status == "not_tested" and c.outcome == Outcome.template_error.value:
            step, template = failed_steps.get((c.contact_point_id, c.channel), ("", ""))
            add("fix_template", c.organisation_code, field, c.channel, cp, c.address, c.outcome,
                template_failure(c.detail), step, template)
        elif c.status == "not_tested":
            add("not_tested", c.organisation_code, field, c.channel, cp, c.address, c.outcome, mask_in_text(c.detail))
        if c.suspicious:
            add("possible_scanner", c.organisation_code, field, c.channel, cp, c.address, c.outcome)
    for e in events:
        if e.kind == ev.RUN_GAP:
            org = str(e.organisation_code or e.data.get("organisation_code") or "")
            add("no_contact_point", org, str(e.data.get("field") or ""), str(e.channel or e.data.get("channel") or ""),
                str(e.data.get("contact_point") or ""), "", "", str(e.data.get("reason") or ""))
        elif e.kind == ev.ENDPOINT_STATUS and e.data.get("status") in ("suspect", "invalid", "blocked"):
            cp = str(e.data.get("contact_point") or "")
            check = next((c for c in checks if c.endpoint_id == e.data.get("endpoint_id")), None)
            if check is not None:
                kind = {"invalid": "fix_endpoint", "blocked": "unblock_number"}.get(str(e.data.get("status")),
                                                                                    "check_endpoint")
                add(kind, check.organisation_code, check.field_code, check.channel,
                    names.cp_name.get(check.contact_point_id, cp), check.address, str(e.data.get("status")))
    order = {k: i for i, k in enumerate(("failed_check", "fix_endpoint", "unblock_number", "voicemail", "late_answer",
                                         "failed_before", "check_endpoint", "possible_scanner", "no_contact_point",
                                         "fix_template",
                                         "not_tested", "stale_endpoint"))}
    # A failed check already says what "check the endpoint" would say about the same address.
    failing = {(p.organisation, p.channel, p.address) for p in points.values()
               if p.kind in ("failed_check", "late_answer", "fix_endpoint", "unblock_number", "voicemail")}
    kept = [p for p in points.values()
            if not (p.kind == "check_endpoint" and (p.organisation, p.channel, p.address) in failing)]
    return sorted(kept, key=lambda a: (order[a.kind], a.organisation, a.channel, a.contact_point))


_NOT_PREPARED = ("the message could not be prepared for this contact point: ", "TemplateError: ")


def template_failure(reason: str) -> str:
    """The error of a template that failed at send time, as stored with the attempt, without
    the engine's English preamble; addresses and numbers in it masked as in the log."""
    for prefix in _NOT_PREPARED:
        reason = reason.removeprefix(prefix)
    return mask_in_text(reason.strip())


def _failed_steps(events: list[EventRow], pings: dict[int, Any], facts: Any) -> dict[tuple[int, str], tuple[str, str]]:
    """(contact point, channel) -> (step, template) of the attempt whose template failed."""
    steps = {e.ping_id: str(e.data.get("step") or "") for e in events if e.kind == ev.PING_PLANNED and e.ping_id}
    out: dict[tuple[int, str], tuple[str, str]] = {}
    for e in events:
        if e.kind == ev.PING_SETTLED and e.outcome == Outcome.template_error.value and e.ping_id in pings:
            p, step = pings[e.ping_id], steps.get(e.ping_id, "")
            out.setdefault((p.contact_point_id, p.channel), (step, facts.step_templates.get(step, "")))
    return out


def _failed_before(conn: sa.Connection, run_id: int, fire_at: datetime | None,
                   checks: list[Check]) -> dict[tuple[int, str], int]:
    """For this run's failed checks: the earlier closed run where the same contact point and
    channel failed too, if it was the previous run that tested it."""
    failed = [(c.contact_point_id, c.channel) for c in checks if c.status == "fail"]
    if not failed or fire_at is None:
        return {}
    out: dict[tuple[int, str], int] = {}
    for cp_id, channel in failed:
        prev = conn.execute(
            sa.select(CF.c.run_id, CF.c.status)
            .where(CF.c.contact_point_id == cp_id, CF.c.channel == channel, CF.c.run_id != run_id,
                   CF.c.fire_at < fire_at, CF.c.status.in_(("pass", "fail")), CF.c.simulated.is_(False))
            .order_by(CF.c.fire_at.desc(), CF.c.run_id.desc()).limit(1)
        ).first()
        if prev is not None and prev.status == "fail":
            out[(cp_id, channel)] = int(prev.run_id)
    return out


def _directory_state(conn: sa.Connection, participants: tuple[tuple[str, str], ...], now: datetime,
                     stale_after_days: int, names: _Names | None = None) -> DirectoryState:
    """The endpoints of the contact points this playbook pings that were not proven reachable
    for longer than the setting (or never), and those whose number blocks our SMS (it replied
    STOP) until it sends START."""
    cutoff = now - timedelta(days=stale_after_days)
    pairs = [sa.and_(ORG.c.code == org, FW.c.code == fld) for org, fld in participants]
    rows = conn.execute(
        sa.select(EP.c.kind, EP.c.address, EP.c.verified_at, EP.c.status, CP.c.name, ORG.c.code,
                  FW.c.code.label("field"))
        .join(CP, CP.c.id == EP.c.contact_point_id).join(ORG, ORG.c.id == CP.c.organisation_id)
        .join(FW, FW.c.id == CP.c.field_id)
        .where(sa.or_(*pairs), CP.c.active.is_(True), EP.c.status != "invalid",
               sa.or_(EP.c.verified_at.is_(None), EP.c.verified_at < cutoff, EP.c.status == "blocked"))
        .order_by(ORG.c.code, CP.c.name, EP.c.kind, EP.c.address)
    ).all() if pairs else []
    fields = {r.code: {"": r.name, **(r.names or {})} for r in conn.execute(sa.select(FW.c.code, FW.c.name, FW.c.names))}
    orgs = {code: {"": name, **(names.org_names.get(code, {}) if names else {})}
            for code, name in (names.orgs.items() if names else [])}
    return DirectoryState(
        generated_at=now, stale_after_days=stale_after_days, organisations=orgs, fields=fields,
        action_points=[
            ActionPoint(kind="unblock_number", organisation=r.code, field=r.field, channel=r.kind,
                        contact_point=r.name, address=r.address, outcome="blocked") if r.status == "blocked" else
            ActionPoint(kind="stale_endpoint", organisation=r.code, field=r.field, channel=r.kind, contact_point=r.name,
                        address=r.address, outcome="", detail=r.verified_at.isoformat() if r.verified_at else "")
            for r in rows
        ],
    )


# --------------------------------------------------------------------------- the log, listed


def _late_answers(events: list[EventRow], pings: dict[int, Any], names: _Names) -> list[LateAnswer]:
    out = []
    for e in events:
        if e.kind != ev.PING_ANSWER_AFTER_CLOSE or e.ping_id not in pings:
            continue
        p = pings[e.ping_id]
        out.append(LateAnswer(
            ping_id=p.id, organisation=p.organisation_code, contact_point=names.cp_name.get(p.contact_point_id, ""),
            channel=p.channel, at=e.at, method=e.data.get("method"), by=e.data.get("by"),
            run_status=str(e.data.get("run_status") or ""),
        ))
    return out


# Which parameters of an event the timeline shows (worded by the renderer).
_PARAMS = {
    ev.PING_PLANNED: ("step", "attempt"),
    ev.PING_SENT: ("provider", "simulated"),
    ev.PING_DELIVERED: ("status",),
    ev.PING_ACKED: ("method", "by", "late", "suspicious"),
    ev.PING_RETRY: ("next_attempt", "reason"),
    ev.PING_ESCALATED: ("to_step", "to_contact_point"),
    ev.PING_UNKNOWN: (),
    ev.PING_SETTLED: ("method",),
    ev.PING_ANSWER_AFTER_CLOSE: ("method", "by"),
    ev.RUN_GAP: ("contact_point", "field"),
    ev.RUN_ABORTED: ("by", "reason"),
    ev.RUN_REFUSED: ("kinds",),
    ev.ENDPOINT_STATUS: ("status",),
}


def _timeline(events: list[EventRow], names: _Names, pings: dict[int, Any],
              step_channels: dict[str, str] | None = None) -> list[TimelineEntry]:
    out = []
    for e in sorted(events, key=lambda x: (x.at, x.id)):
        p = pings.get(e.ping_id) if e.ping_id else None
        params = {k: e.data[k] for k in _PARAMS.get(e.kind, ()) if e.data.get(k) not in (None, "", False)}
        if e.kind == ev.PING_ESCALATED and "to_contact_point" in params:
            params["to_contact_point"] = names.by_code.get(str(params["to_contact_point"]), params["to_contact_point"])
        if e.kind == ev.PING_ESCALATED and (step_channels or {}).get(str(e.data.get("to_step"))):
            params["to_channel"] = (step_channels or {})[str(e.data.get("to_step"))]  # the reader's word for the step
        out.append(TimelineEntry(
            event_id=e.id, at=e.at, kind=e.kind,
            organisation=e.organisation_code or e.data.get("organisation_code"),
            channel=e.channel or e.data.get("channel"),
            contact_point=(names.cp_name.get(p.contact_point_id) if p else None) or e.data.get("contact_point"),
            outcome=e.outcome, params=params,
        ))
    return out


def conn_free_endpoints(engine: Engine, events: list[EventRow]) -> dict[int, Any]:
    ids = {int(e.data["endpoint_id"]) for e in events if e.kind.startswith("endpoint.") and e.data.get("endpoint_id")}
    if not ids:
        return {}
    with engine.connect() as conn:
        return {
            r.id: r for r in conn.execute(
                sa.select(EP.c.id, EP.c.kind, EP.c.address, CP.c.name)
                .join(CP, CP.c.id == EP.c.contact_point_id).where(EP.c.id.in_(ids))
            )
        }


def _directory_changes(endpoints: dict[int, Any], events: list[EventRow]) -> list[DirectoryChange]:
    out = []
    for e in events:
        if e.kind not in (ev.ENDPOINT_STATUS, ev.ENDPOINT_VERIFIED):
            continue
        eid = e.data.get("endpoint_id")
        endpoint = endpoints.get(int(eid)) if eid else None
        out.append(DirectoryChange(
            event_id=e.id, at=e.at, endpoint_id=int(eid) if eid else None,
            contact_point=endpoint.name if endpoint else "", channel=endpoint.kind if endpoint else (e.channel or ""),
            address=endpoint.address if endpoint else "",
            change="verified" if e.kind == ev.ENDPOINT_VERIFIED else f"status:{e.data.get('status', '')}",
        ))
    return out


def is_running(report: TestReport) -> bool:
    return report.run.status in (RunStatus.running.value, RunStatus.planned.value)


def write_test_report(
    engine: Engine,
    run_id: int,
    out_dir: Path,
    formats: tuple[str, ...] = ("html", "pdf"),
    lang: str = "en",
) -> list[Path]:
    """Render the run's report into ``out_dir`` as ``run-<id>.<format>``; returns the paths."""
    from reports.render import write_report

    report = build_test_report(engine, run_id)
    return write_report(report, Path(out_dir) / f"run-{run_id}", formats, lang)
