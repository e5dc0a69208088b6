"""The test report of one run: verdicts, per-ping times, timeline, observations, action points.

``build_test_report`` reads only the event log of the run (plus the immutable identity of
its pings and the names in the directory); ``write_test_report`` renders it.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from commtest import events as ev
from commtest.clock import parse_instant
from commtest.errors import NotFoundError
from commtest.models import ContactPoint, Endpoint, FieldOfWork, PlaybookRevision, RunStatus
from reports.playbook_facts import playbook_facts
from reports.queries import ACK_OUTCOMES, E, P, R, last_settled, ts, verdicts

CP = ContactPoint.__table__  # type: ignore[attr-defined]
FW = FieldOfWork.__table__  # type: ignore[attr-defined]
EP = Endpoint.__table__  # type: ignore[attr-defined]
REV = PlaybookRevision.__table__  # type: ignore[attr-defined]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunInfo(_Frozen):
    id: int
    playbook_id: str
    playbook_title: str
    revision_id: int
    status: str
    trigger: str
    announced: bool
    fire_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class Verdict(_Frozen):
    organisation: str
    channel: str
    verdict: str
    target_ms: int | None
    contact_points: int
    in_target: int
    gaps: int


class PingLine(_Frozen):
    ping_id: int
    organisation: str
    contact_point: str
    field: str
    channel: str
    step: str
    attempt: int
    address: str
    planned_at: datetime | None
    sent_at: datetime | None
    delivered_at: datetime | None
    delivered_status: str | None
    acked_at: datetime | None
    response_ms: int | None
    method: str | None
    outcome: str | None
    suspicious: bool


class TimelineEntry(_Frozen):
    at: datetime
    kind: str
    organisation: str | None
    channel: str | None
    contact_point: str | None
    outcome: str | None
    detail: str


class Observation(_Frozen):
    kind: Literal["suspicious", "retry", "escalated", "unknown"]
    at: datetime
    ping_id: int
    organisation: str
    channel: str
    contact_point: str
    detail: str


class ActionPoint(_Frozen):
    kind: Literal["fix_endpoint", "check_endpoint"]
    organisation: str
    channel: str
    contact_point: str
    address: str
    reason: str


class DirectoryChange(_Frozen):
    at: datetime
    endpoint_id: int | None
    contact_point: str
    channel: str
    address: str
    change: str  # "verified" or "status:<suspect|invalid|active>"


class TestReport(_Frozen):
    __test__ = False  # not a pytest class
    report: Literal["test"] = "test"
    run: RunInfo
    timezone: str
    targets_ms: dict[str, int]
    verdicts: list[Verdict]
    outcome_counts: dict[str, int]
    pings: list[PingLine]
    timeline: list[TimelineEntry]
    observations: list[Observation]
    action_points: list[ActionPoint]
    directory_changes: list[DirectoryChange]


def build_test_report(engine: Engine, run_id: int) -> TestReport:
    with engine.connect() as conn:
        run = conn.execute(
            sa.select(R, REV.c.source_text).join(REV, REV.c.id == R.c.revision_id).where(R.c.id == run_id)
        ).first()
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist; `commtest runs list` shows the runs")
        facts = playbook_facts(run.source_text, revision_id=run.revision_id)
        info = RunInfo(
            id=run.id,
            playbook_id=run.playbook_id,
            playbook_title=facts.title,
            revision_id=run.revision_id,
            status=run.status,
            trigger=run.trigger,
            announced=run.announced,
            fire_at=run.fire_at,
            started_at=run.started_at,
            finished_at=run.finished_at,
        )
        targets = {(run_id, ch): ms for ch, ms in facts.targets_ms.items()}
        running = [run_id] if run.status in (RunStatus.running.value, RunStatus.planned.value) else []
        verdict_rows = verdicts(
            conn, [run_id], targets, {run_id: (facts.participants, facts.needed_channels)}, running
        )
        settled = last_settled(E.c.run_id == run_id)
        outcome_counts = {
            o: int(n)
            for o, n in conn.execute(
                sa.select(settled.c.outcome, sa.func.count()).group_by(settled.c.outcome).order_by(settled.c.outcome)
            )
        }
        pings = _ping_lines(conn, run_id, settled)
        timeline, observations, changes = _log_sections(conn, run_id, {p.ping_id: p for p in pings})
    return TestReport(
        run=info,
        timezone=facts.timezone,
        targets_ms=facts.targets_ms,
        verdicts=[
            Verdict(
                organisation=v.organisation,
                channel=v.channel,
                verdict=v.verdict,
                target_ms=v.target_ms,
                contact_points=v.contact_points,
                in_target=v.in_target,
                gaps=v.gaps,
            )
            for v in verdict_rows
        ],
        outcome_counts=outcome_counts,
        pings=pings,
        timeline=timeline,
        observations=observations,
        action_points=_action_points(pings, changes),
        directory_changes=changes,
    )


def _first(kind: str, column: Any = None) -> Any:
    return ts(sa.func.min(sa.case((E.c.kind == kind, E.c.at if column is None else column))))


def _ping_lines(conn: sa.Connection, run_id: int, settled: sa.Subquery) -> list[PingLine]:
    times = (
        sa.select(
            E.c.ping_id,
            _first(ev.PING_PLANNED).label("planned_at"),
            _first(ev.PING_SENT).label("sent_at"),
            _first(ev.PING_DELIVERED).label("delivered_at"),
            _first(ev.PING_ACKED).label("acked_at"),
            sa.func.min(sa.case((E.c.kind == ev.PING_PLANNED, E.c.id))).label("planned_event_id"),
            sa.func.min(sa.case((E.c.kind == ev.PING_ACKED, E.c.id))).label("ack_event_id"),
            sa.func.min(sa.case((E.c.kind == ev.PING_DELIVERED, E.c.id))).label("delivered_event_id"),
        )
        .where(E.c.run_id == run_id, E.c.ping_id.is_not(None))
        .group_by(E.c.ping_id)
        .subquery("times")
    )
    rows = conn.execute(
        sa.select(
            times,
            P.c.organisation_code,
            P.c.channel,
            P.c.step,
            P.c.attempt,
            P.c.address,
            CP.c.code.label("cp_code"),
            CP.c.name.label("cp_name"),
            FW.c.code.label("field"),
            settled.c.outcome,
            settled.c.response_ms,
        )
        .join(P, P.c.id == times.c.ping_id)
        .join(CP, CP.c.id == P.c.contact_point_id)
        .join(FW, FW.c.id == CP.c.field_id)
        .outerjoin(settled, settled.c.ping_id == times.c.ping_id)
        .order_by(P.c.organisation_code, CP.c.code, P.c.channel, P.c.attempt, times.c.ping_id)
    ).all()
    detail_ids = [i for r in rows for i in (r.planned_event_id, r.ack_event_id, r.delivered_event_id) if i]
    data: dict[int, dict[str, Any]] = dict(conn.execute(sa.select(E.c.id, E.c.data).where(E.c.id.in_(detail_ids))).all()) if detail_ids else {}
    lines = []
    for r in rows:
        ack = data.get(r.ack_event_id) or {}
        delivered = data.get(r.delivered_event_id) or {}
        due = (data.get(r.planned_event_id) or {}).get("due_at")
        lines.append(
            PingLine(
                ping_id=r.ping_id,
                organisation=r.organisation_code,
                contact_point=r.cp_name,
                field=r.field,
                channel=r.channel,
                step=r.step,
                attempt=r.attempt,
                address=r.address,
                # The moment it was due, as planned; the planning event's time if absent.
                planned_at=parse_instant(due) if due else r.planned_at,
                sent_at=r.sent_at,
                delivered_at=r.delivered_at,
                delivered_status=delivered.get("status") if r.delivered_at else None,
                acked_at=r.acked_at,
                response_ms=r.response_ms if r.outcome in ACK_OUTCOMES else None,
                method=ack.get("method"),
                outcome=r.outcome,
                suspicious=bool(ack.get("suspicious")),
            )
        )
    return lines


_OBSERVED = {
    ev.PING_RETRY: "retry",
    ev.PING_ESCALATED: "escalated",
    ev.PING_UNKNOWN: "unknown",
}


def _log_sections(
    conn: sa.Connection, run_id: int, by_ping: dict[int, PingLine]
) -> tuple[list[TimelineEntry], list[Observation], list[DirectoryChange]]:
    """The run's log in order (one run is a few hundred events: listed, not aggregated)."""
    rows = conn.execute(
        sa.select(E.c.id, E.c.at, E.c.kind, E.c.ping_id, E.c.organisation_code, E.c.channel, E.c.outcome, E.c.data)
        .where(E.c.run_id == run_id)
        .order_by(E.c.at, E.c.id)
    ).all()
    endpoint_ids = {int(r.data["endpoint_id"]) for r in rows if r.kind.startswith("endpoint.") and r.data.get("endpoint_id")}
    endpoints = {}
    if endpoint_ids:
        endpoints = {
            e.id: e
            for e in conn.execute(
                sa.select(EP.c.id, EP.c.kind, EP.c.address, CP.c.name)
                .join(CP, CP.c.id == EP.c.contact_point_id)
                .where(EP.c.id.in_(endpoint_ids))
            )
        }
    timeline, observations, changes = [], [], []
    for r in rows:
        ping = by_ping.get(r.ping_id) if r.ping_id else None
        data: dict[str, Any] = r.data or {}
        detail = _detail(r.kind, data)
        at = r.at
        timeline.append(
            TimelineEntry(
                at=at,
                kind=r.kind,
                organisation=r.organisation_code or data.get("organisation_code"),
                channel=r.channel or data.get("channel"),
                contact_point=ping.contact_point if ping else data.get("contact_point"),
                outcome=r.outcome,
                detail=detail,
            )
        )
        if ping and (r.kind in _OBSERVED or (r.kind == ev.PING_ACKED and data.get("suspicious"))):
            observations.append(
                Observation(
                    kind=_OBSERVED.get(r.kind, "suspicious"),  # type: ignore[arg-type]
                    at=at,
                    ping_id=ping.ping_id,
                    organisation=ping.organisation,
                    channel=ping.channel,
                    contact_point=ping.contact_point,
                    detail=detail,
                )
            )
        if r.kind in (ev.ENDPOINT_STATUS, ev.ENDPOINT_VERIFIED):
            eid = data.get("endpoint_id")
            endpoint = endpoints.get(int(eid)) if eid else None
            changes.append(
                DirectoryChange(
                    at=at,
                    endpoint_id=int(eid) if eid else None,
                    contact_point=endpoint.name if endpoint else "",
                    channel=endpoint.kind if endpoint else (r.channel or ""),
                    address=endpoint.address if endpoint else "",
                    change="verified" if r.kind == ev.ENDPOINT_VERIFIED else f"status:{data.get('status', '')}",
                )
            )
    return timeline, observations, changes


def _detail(kind: str, data: dict[str, Any]) -> str:
    keys = {
        ev.PING_PLANNED: ("step", "attempt"),
        ev.PING_SENT: ("provider",),
        ev.PING_DELIVERED: ("status",),
        ev.PING_ACKED: ("method", "by"),
        ev.PING_RETRY: ("next_attempt", "reason"),
        ev.PING_ESCALATED: ("to_step", "to_contact_point"),
        ev.PING_UNKNOWN: ("reason",),
        ev.PING_SETTLED: ("method", "reason"),
        ev.RUN_GAP: ("contact_point", "reason"),
        ev.RUN_ABORTED: ("by", "reason"),
        ev.ENDPOINT_STATUS: ("status", "reason"),
    }.get(kind, ())
    return ", ".join(f"{k}={data[k]}" for k in keys if data.get(k) not in (None, ""))


def _action_points(pings: list[PingLine], changes: list[DirectoryChange]) -> list[ActionPoint]:
    points: dict[tuple[str, str, str], ActionPoint] = {}
    for p in pings:
        if p.outcome in ("bounced", "invalid_endpoint"):
            points[(p.channel, p.address, p.contact_point)] = ActionPoint(
                kind="fix_endpoint",
                organisation=p.organisation,
                channel=p.channel,
                contact_point=p.contact_point,
                address=p.address,
                reason=p.outcome,
            )
    for c in changes:
        if c.change in ("status:suspect", "status:invalid"):
            key = (c.channel, c.address, c.contact_point)
            if key not in points:
                org = next((p.organisation for p in pings if p.contact_point == c.contact_point), "")
                points[key] = ActionPoint(
                    kind="fix_endpoint" if c.change == "status:invalid" else "check_endpoint",
                    organisation=org,
                    channel=c.channel,
                    contact_point=c.contact_point,
                    address=c.address,
                    reason=c.change.split(":", 1)[1],
                )
    return sorted(points.values(), key=lambda a: (a.organisation, a.contact_point, a.channel))


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
