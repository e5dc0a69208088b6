"""The figures of a monthly report, computed by the database from the event log.

A month is a calendar month in the report's time zone; a run belongs to the month its
``fire_at`` falls in. The 12-month trend is computed in the same queries, grouping by a
CASE expression that maps ``fire_at`` to its month (portable and DST-correct, unlike
``strftime``/``to_char`` on UTC). Percentiles: see ``reports.queries`` (nearest rank).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from commtest import events as ev
from commtest.clock import UTC
from commtest.errors import CommtestError
from commtest.models import (
    CHANNEL_TEST_TRIGGER,
    ContactPoint,
    Endpoint,
    EndpointStatus,
    Organisation,
    Outcome,
    PlaybookRevision,
)
from reports.playbook_facts import playbook_facts
from reports.queries import E, P, R, acknowledged, last_settled, nearest_rank_percentiles, running_statuses, ts, verdicts

EP = Endpoint.__table__  # type: ignore[attr-defined]
CP = ContactPoint.__table__  # type: ignore[attr-defined]
REV = PlaybookRevision.__table__  # type: ignore[attr-defined]
ORG = Organisation.__table__  # type: ignore[attr-defined]
TREND_MONTHS = 12
# A channel test (`commtest channel test`) checks one endpoint, not a centre's readiness: not counted.
COUNTED = R.c.trigger != CHANNEL_TEST_TRIGGER
FRESH_MONTHS = 6


class BadMonth(CommtestError):
    exit_code = 2


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class MonthRun(_Frozen):
    id: int
    playbook_id: str
    status: str
    trigger: str
    announced: bool
    fire_at: datetime
    pings: int
    acknowledged: int


class Stats(_Frozen):
    pings: int  # settled pings
    acknowledged: int
    ack_rate: float | None
    median_ms: int | None
    p90_ms: int | None


class OrgChannelStats(Stats):
    organisation: str
    channel: str
    breaches: int


class Breach(_Frozen):
    run_id: int
    organisation: str
    channel: str
    verdict: str
    target_ms: int | None
    contact_points: int
    in_target: int


class TrendPoint(Stats):
    month: str
    runs: int
    channels: dict[str, Stats]


class Freshness(_Frozen):
    endpoints: int
    fresh: int
    share: float | None
    since: datetime
    until: datetime


class MonthActionPoint(_Frozen):
    organisation: str
    channel: str
    contact_point: str
    address: str
    reason: str
    since: datetime


class MonthlyFigures(_Frozen):
    report: Literal["monthly"] = "monthly"
    month: str
    timezone: str
    period_start: datetime
    period_end: datetime
    runs: list[MonthRun]
    totals: Stats
    outcome_counts: dict[str, int]
    per_org_channel: list[OrgChannelStats]
    breaches: list[Breach]
    trend: list[TrendPoint]
    freshness: Freshness
    action_points: list[MonthActionPoint]


def parse_month(month: str) -> tuple[int, int]:
    try:
        year, mon = (int(x) for x in month.split("-"))
        if len(month) != 7 or not 1 <= mon <= 12:
            raise ValueError
    except ValueError:
        raise BadMonth(f"month {month!r}: expected YYYY-MM, e.g. 2026-04") from None
    return year, mon


def shift_month(year: int, month: int, delta: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + delta
    return index // 12, index % 12 + 1


def month_start(year: int, month: int, zone: str) -> datetime:
    return datetime(year, month, 1, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def _rate(acked: int, total: int) -> float | None:
    # Rounded so that the JSON file and a recomputation compare equal digit for digit.
    return round(acked / total, 6) if total else None


def compute_monthly_figures(engine: Engine, month: str, timezone: str = "Europe/Brussels") -> MonthlyFigures:
    year, mon = parse_month(month)
    months = [shift_month(year, mon, -i) for i in range(TREND_MONTHS - 1, -1, -1)]
    labels = [f"{y:04d}-{m:02d}" for y, m in months]
    bounds = [month_start(y, m, timezone) for y, m in months] + [month_start(*shift_month(year, mon, 1), timezone)]
    start, end = bounds[-2], bounds[-1]
    bucket = sa.case(
        *((sa.and_(R.c.fire_at >= bounds[i], R.c.fire_at < bounds[i + 1]), labels[i]) for i in range(TREND_MONTHS)),
        else_=sa.null(),
    )
    year_runs = sa.select(R.c.id).where(R.c.fire_at >= bounds[0], R.c.fire_at < end, COUNTED)

    with engine.connect() as conn:
        settled = last_settled(E.c.run_id.in_(year_runs))
        enriched = (
            sa.select(settled, bucket.label("month")).join(R, R.c.id == settled.c.run_id).subquery("enriched")
        )
        this_month = sa.select(enriched).where(enriched.c.month == month).subquery("this_month")

        runs = _runs(conn, start, end, settled)
        outcome_counts = {
            o: int(n)
            for o, n in conn.execute(
                sa.select(this_month.c.outcome, sa.func.count())
                .group_by(this_month.c.outcome)
                .order_by(this_month.c.outcome)
            )
        }
        breaches = _breaches(conn, runs)
        per_org = _per_org_channel(conn, this_month, breaches)
        trend = _trend(conn, enriched, labels, bounds)
        freshness = _freshness(conn, year, mon, end, timezone)
        action_points = _action_points(conn, this_month, end)
    current = trend[-1]
    return MonthlyFigures(
        month=month,
        timezone=timezone,
        period_start=start,
        period_end=end,
        runs=runs,
        totals=Stats(**{k: getattr(current, k) for k in Stats.model_fields}),
        outcome_counts=outcome_counts,
        per_org_channel=per_org,
        breaches=breaches,
        trend=trend,
        freshness=freshness,
        action_points=action_points,
    )


def _counts(settled: Any) -> tuple[Any, Any]:
    return sa.func.count(), sa.func.sum(sa.case((acknowledged(settled), 1), else_=0))


def _runs(conn: sa.Connection, start: datetime, end: datetime, settled: sa.Subquery) -> list[MonthRun]:
    n, acked = _counts(settled)
    per_run = (
        sa.select(settled.c.run_id, n.label("n"), acked.label("acked")).group_by(settled.c.run_id).subquery("per_run")
    )
    rows = conn.execute(
        sa.select(R, per_run.c.n, per_run.c.acked)
        .outerjoin(per_run, per_run.c.run_id == R.c.id)
        .where(R.c.fire_at >= start, R.c.fire_at < end, COUNTED)
        .order_by(R.c.fire_at, R.c.id)
    )
    return [
        MonthRun(
            id=r.id,
            playbook_id=r.playbook_id,
            status=r.status,
            trigger=r.trigger,
            announced=r.announced,
            fire_at=r.fire_at,
            pings=int(r.n or 0),
            acknowledged=int(r.acked or 0),
        )
        for r in rows
    ]


def _breaches(conn: sa.Connection, runs: list[MonthRun]) -> list[Breach]:
    run_ids = [r.id for r in runs if r.pings or r.status not in ("planned", "missed")]
    if not run_ids:
        return []
    revisions: dict[int, int] = dict(conn.execute(sa.select(R.c.id, R.c.revision_id).where(R.c.id.in_(run_ids))).all())
    sources: dict[int, str] = dict(conn.execute(sa.select(REV.c.id, REV.c.source_text).where(REV.c.id.in_(set(revisions.values())))).all())
    facts = {rev: playbook_facts(text, revision_id=rev) for rev, text in sources.items()}
    targets = {(run, ch): ms for run, rev in revisions.items() for ch, ms in facts[rev].targets_ms.items()}
    needed = {run: (facts[rev].participants, facts[rev].needed_channels) for run, rev in revisions.items()}
    running = [r.id for r in runs if r.status in running_statuses()]
    return [
        Breach(
            run_id=v.run_id,
            organisation=v.organisation,
            channel=v.channel,
            verdict=v.verdict,
            target_ms=v.target_ms,
            contact_points=v.contact_points,
            in_target=v.in_target,
        )
        for v in verdicts(conn, run_ids, targets, needed, running)
        if v.verdict in ("fail", "no_endpoint")
    ]


def _per_org_channel(conn: sa.Connection, this_month: sa.Subquery, breaches: list[Breach]) -> list[OrgChannelStats]:
    n, acked = _counts(this_month)
    group = (this_month.c.organisation_code, this_month.c.channel)
    counts = conn.execute(sa.select(*group, n, acked).group_by(*group).order_by(*group)).all()
    pct = nearest_rank_percentiles(conn, this_month, ["organisation_code", "channel"])
    out = []
    keys = {(o, c) for o, c, _, _ in counts} | {(b.organisation, b.channel) for b in breaches}
    by_key = {(o, c): (int(total), int(a or 0)) for o, c, total, a in counts}
    for org, channel in sorted(keys):
        total, a = by_key.get((org, channel), (0, 0))
        _, median, p90 = pct.get((org, channel), (0, None, None))
        out.append(
            OrgChannelStats(
                organisation=org,
                channel=channel,
                pings=total,
                acknowledged=a,
                ack_rate=_rate(a, total),
                median_ms=median,
                p90_ms=p90,
                breaches=sum(1 for b in breaches if (b.organisation, b.channel) == (org, channel)),
            )
        )
    return out


def _trend(conn: sa.Connection, enriched: sa.Subquery, labels: list[str], bounds: list[datetime]) -> list[TrendPoint]:
    n, acked = _counts(enriched)
    by_month = {m: (int(t), int(a or 0)) for m, t, a in conn.execute(sa.select(enriched.c.month, n, acked).group_by(enriched.c.month))}
    by_channel = {
        (m, c): (int(t), int(a or 0))
        for m, c, t, a in conn.execute(
            sa.select(enriched.c.month, enriched.c.channel, n, acked).group_by(enriched.c.month, enriched.c.channel)
        )
    }
    pct_month = nearest_rank_percentiles(conn, enriched, ["month"])
    pct_channel = nearest_rank_percentiles(conn, enriched, ["month", "channel"])
    run_counts: dict[str, int] = dict(
        conn.execute(
            sa.select(
                sa.case(
                    *((sa.and_(R.c.fire_at >= bounds[i], R.c.fire_at < bounds[i + 1]), labels[i]) for i in range(len(labels)))
                ).label("m"),
                sa.func.count(),
            )
            .where(R.c.fire_at >= bounds[0], R.c.fire_at < bounds[-1], COUNTED)
            .group_by("m")
        ).all()
    )
    points = []
    for label in labels:
        total, a = by_month.get(label, (0, 0))
        _, median, p90 = pct_month.get((label,), (0, None, None))
        channels = {}
        for (m, c), (ct, ca) in sorted(by_channel.items()):
            if m == label:
                _, cm, cp = pct_channel.get((m, c), (0, None, None))
                channels[c] = Stats(pings=ct, acknowledged=ca, ack_rate=_rate(ca, ct), median_ms=cm, p90_ms=cp)
        points.append(
            TrendPoint(
                month=label,
                runs=int(run_counts.get(label, 0)),
                pings=total,
                acknowledged=a,
                ack_rate=_rate(a, total),
                median_ms=median,
                p90_ms=p90,
                channels=channels,
            )
        )
    return points


def _freshness(conn: sa.Connection, year: int, mon: int, end: datetime, timezone: str) -> Freshness:
    since = month_start(*shift_month(year, mon, 1 - FRESH_MONTHS), timezone)
    proven = sa.select(E.c.data["endpoint_id"].as_integer()).where(
        E.c.kind == ev.ENDPOINT_VERIFIED, E.c.at >= since, E.c.at < end
    )
    # An endpoint counts when a run proved it in the window (event), or when the
    # directory records a proof in the window (e.g. imported with its last verification).
    fresh = sa.or_(EP.c.id.in_(proven), sa.and_(EP.c.verified_at >= since, EP.c.verified_at < end))
    total, n_fresh = conn.execute(sa.select(sa.func.count(), sa.func.sum(sa.case((fresh, 1), else_=0)))).one()
    total, n_fresh = int(total), int(n_fresh or 0)
    return Freshness(endpoints=total, fresh=n_fresh, share=_rate(n_fresh, total), since=since, until=end)


def _action_points(conn: sa.Connection, this_month: sa.Subquery, end: datetime) -> list[MonthActionPoint]:
    """Open at the month's end: endpoints last marked suspect/invalid, and endpoints whose
    pings bounced or were refused as invalid, unless a run proved them reachable since."""
    eid = E.c.data["endpoint_id"].as_integer()
    later = E.alias("later")

    def proven_after(endpoint_col: Any, after_col: Any) -> Any:
        return sa.exists().where(
            later.c.kind == ev.ENDPOINT_VERIFIED,
            later.c.data["endpoint_id"].as_integer() == endpoint_col,
            later.c.at >= after_col,
            later.c.at < end,
        )
    last_status = (
        sa.select(sa.func.max(E.c.id).label("id"))
        .where(E.c.kind == ev.ENDPOINT_STATUS, E.c.at < end)
        .group_by(eid)
        .subquery("last_status")
    )
    status = E.c.data["status"].as_string()
    marked = conn.execute(
        sa.select(eid.label("endpoint_id"), status.label("status"), ts(E.c.at).label("at"))
        .join(last_status, last_status.c.id == E.c.id)
        .where(status.in_((EndpointStatus.suspect.value, EndpointStatus.invalid.value)), ~proven_after(eid, E.c.at))
    ).all()
    failed = conn.execute(
        sa.select(P.c.endpoint_id, this_month.c.outcome, ts(sa.func.min(this_month.c.at)).label("at"))
        .join(P, P.c.id == this_month.c.ping_id)
        .where(
            this_month.c.outcome.in_((Outcome.bounced.value, Outcome.invalid_endpoint.value)),
            P.c.endpoint_id.is_not(None),
            ~proven_after(P.c.endpoint_id, this_month.c.at),
        )
        .group_by(P.c.endpoint_id, this_month.c.outcome)
    ).all()
    found: dict[int, tuple[str, datetime]] = {}
    for endpoint_id, reason, at in [*failed, *marked]:
        if endpoint_id is not None and (endpoint_id not in found or at < found[endpoint_id][1]):
            found[int(endpoint_id)] = (reason, at)
    if not found:
        return []
    rows = conn.execute(
        sa.select(EP.c.id, EP.c.kind, EP.c.address, CP.c.name, ORG.c.code)
        .join(CP, CP.c.id == EP.c.contact_point_id)
        .join(ORG, ORG.c.id == CP.c.organisation_id)
        .where(EP.c.id.in_(found))
    ).all()
    return sorted(
        (
            MonthActionPoint(
                organisation=r.code,
                channel=r.kind,
                contact_point=r.name,
                address=r.address,
                reason=found[r.id][0],
                since=found[r.id][1],
            )
            for r in rows
        ),
        key=lambda a: (a.organisation, a.contact_point, a.channel, a.address),
    )
