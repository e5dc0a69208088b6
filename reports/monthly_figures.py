"""The figures of a monthly report, aggregated by the database from the check facts.

A month is a calendar month in the report's time zone; a run belongs to the month its
``fire_at`` falls in. The unit is the **check** (commtest.facts): rates, medians and
percentiles are over checks of closed runs, written once when each run closed
(``check_fact``/``verdict_fact``, derived from the event log and rebuildable from it).
Simulated checks (a sandbox or a local fake answered) are never mixed into the figures:
they are counted apart and shown as such. The 12-month trend groups by a CASE expression
that maps ``fire_at`` to its month (portable and DST-correct, unlike ``strftime`` on UTC).
Percentiles: nearest rank (see ``reports.queries``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine
from sqlalchemy.sql.util import ClauseAdapter

from commtest import events as ev
from commtest.clock import UTC
from commtest.errors import CommtestError
from commtest.models import (
    CHANNEL_TEST_TRIGGER,
    CheckFact,
    ContactPoint,
    Endpoint,
    EndpointStatus,
    FieldOfWork,
    MonthRollup,
    Organisation,
    PlaybookRevision,
    VerdictFact,
)
from reports.playbook_facts import RevisionUnreadable, playbook_facts
from reports.queries import E, P, R, nearest_rank, ts
from reports.test_report import template_failure

log = logging.getLogger(__name__)

EP = Endpoint.__table__  # type: ignore[attr-defined]
CP = ContactPoint.__table__  # type: ignore[attr-defined]
ORG = Organisation.__table__  # type: ignore[attr-defined]
FW = FieldOfWork.__table__  # type: ignore[attr-defined]
CF = CheckFact.__table__  # type: ignore[attr-defined]
VF = VerdictFact.__table__  # type: ignore[attr-defined]
REV = PlaybookRevision.__table__  # type: ignore[attr-defined]
MR = MonthRollup.__table__  # type: ignore[attr-defined]
TREND_MONTHS = 12
# A channel test (`commtest channel test`) checks one endpoint, not a centre's readiness: not counted.
COUNTED = R.c.trigger != CHANNEL_TEST_TRIGGER
FRESH_MONTHS = 6
ANSWERED = ("acked", "acked_late", "manual", "self_reported")
COUNTED = ("pass", "fail")


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
    checks: int
    answered: int
    simulated: bool


class Stats(_Frozen):
    checks: int  # counted checks (pass or fail): each tested a centre
    answered: int
    in_target: int
    ack_rate: float | None
    in_target_rate: float | None
    median_ms: int | None
    p90_ms: int | None


class OrgChannelStats(Stats):
    organisation: str
    channel: str
    failed_runs: int


class Breach(_Frozen):
    run_id: int
    organisation: str
    channel: str
    verdict: str
    target_ms: int | None
    checks: int
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
    kind: Literal["repeated_failure", "failed_check", "late_answer", "fix_endpoint", "unblock_number", "check_endpoint",
                  "possible_scanner", "no_contact_point", "fix_template", "not_tested", "stale_endpoint"]
    organisation: str
    field: str
    channel: str
    contact_point: str
    address: str
    reason: str
    since: datetime | None  # None: an endpoint never proven reachable
    failures: int = 1
    from_earlier_month: bool = False
    detail: str = ""  # fix_template: the template's error, masked
    step: str = ""  # fix_template: the step whose template failed, and that template
    template: str = ""


class SimulatedTotals(_Frozen):
    checks: int
    answered: int
    runs: int


class MonthlyFigures(_Frozen):
    report: Literal["monthly"] = "monthly"
    month: str
    timezone: str
    period_start: datetime
    period_end: datetime
    runs: list[MonthRun]
    totals: Stats
    simulated: SimulatedTotals
    outcome_counts: dict[str, int]
    per_org_channel: list[OrgChannelStats]
    breaches: list[Breach]
    trend: list[TrendPoint]
    freshness: Freshness
    action_points: list[MonthActionPoint]
    # The names of the organisations and fields of work, as the directory had them:
    # code -> {"": name, "<lang>": ...}
    organisations: dict[str, dict[str, str]] = {}
    fields: dict[str, dict[str, str]] = {}
    # The endpoints not proven reachable in the ``stale_after_days`` before the month's end:
    # from the directory as it is, not from the log (``report verify`` does not compare them).
    stale_after_days: int = 180
    stale_endpoints: list[MonthActionPoint] = []


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


def month_bounds(month: str, zone: str) -> tuple[datetime, datetime]:
    year, mon = parse_month(month)
    return month_start(year, mon, zone), month_start(*shift_month(year, mon, 1), zone)


def _rate(part: int, total: int) -> float | None:
    # Rounded so that the JSON file and a recomputation compare equal digit for digit.
    return round(part / total, 6) if total else None


def _not_channel_test(run_col: Any) -> Any:
    """Channel tests (`commtest channel test`) check one new endpoint: they count in no figure."""
    return run_col.not_in(sa.select(R.c.id).where(R.c.trigger == CHANNEL_TEST_TRIGGER))


def compute_monthly_figures(engine: Engine, month: str, timezone: str = "Europe/Brussels", *,
                            stale_after_days: int = 180, now: datetime | None = None) -> MonthlyFigures:
    """The figures of ``month``. With ``now``, the trend's settled months are read from (and
    stored into) ``month_rollup``; without it every figure is computed from ``check_fact``
    (what ``report verify`` does, so it also checks the rollups a report used)."""
    year, mon = parse_month(month)
    months = [shift_month(year, mon, -i) for i in range(TREND_MONTHS - 1, -1, -1)]
    labels = [f"{y:04d}-{m:02d}" for y, m in months]
    bounds = [month_start(y, m, timezone) for y, m in months] + [month_start(*shift_month(year, mon, 1), timezone)]
    start, end = bounds[-2], bounds[-1]
    with engine.connect() as conn:
        # Only this month's checks are read (the index on fire_at): the trend's other months come
        # from their rollups, or one month at a time.
        this_month = _in_month(start, end).subquery("this_month")
        runs = _runs(conn, start, end)
        times = _answered_times(conn, start, end)
        trend, settled = _trend(conn, labels, bounds, timezone, now, times)
        outcome_counts = {
            o: int(n) for o, n in conn.execute(
                sa.select(this_month.c.outcome, sa.func.count()).where(this_month.c.status.in_(COUNTED))
                .group_by(this_month.c.outcome).order_by(this_month.c.outcome))
        }
        breaches = _breaches(conn, start, end)
        per_org = _per_org_channel(conn, this_month, breaches, times)
        simulated = _simulated(conn, start, end)
        freshness = _freshness(conn, year, mon, end, timezone)
        action_points = _action_points(conn, start, end)
        stale = _stale_endpoints(conn, end, stale_after_days)
        organisations = {r.code: {"": r.name, **(r.names or {})}
                         for r in conn.execute(sa.select(ORG.c.code, ORG.c.name, ORG.c.names))}
        fields = {r.code: {"": r.name, **(r.names or {})} for r in conn.execute(sa.select(FW.c.code, FW.c.name, FW.c.names))}
    if settled and now is not None:
        store_rollups(engine, settled, now, timezone)
    current = trend[-1]
    return MonthlyFigures(
        month=month, timezone=timezone, period_start=start, period_end=end, runs=runs,
        totals=Stats(**{k: getattr(current, k) for k in Stats.model_fields}),
        simulated=simulated, outcome_counts=outcome_counts, per_org_channel=per_org, breaches=breaches, trend=trend,
        freshness=freshness, action_points=action_points, organisations=organisations, fields=fields,
        stale_after_days=stale_after_days, stale_endpoints=stale,
    )


def _in_month(start: datetime, end: datetime) -> Any:
    """The real (not simulated) checks of the runs fired in [start, end), channel tests left out."""
    return sa.select(CF).where(CF.c.fire_at >= start, CF.c.fire_at < end, CF.c.simulated.is_(False),
                               _not_channel_test(CF.c.run_id))


def _aggregates(src: Any) -> tuple[Any, Any, Any]:
    counted = src.c.status.in_(COUNTED)
    return (
        sa.func.sum(sa.case((counted, 1), else_=0)),
        sa.func.sum(sa.case((sa.and_(counted, src.c.outcome.in_(ANSWERED)), 1), else_=0)),
        sa.func.sum(sa.case((src.c.status == "pass", 1), else_=0)),
    )


def _stats(checks: int, answered: int, in_target: int, median: int | None, p90: int | None) -> dict[str, Any]:
    return dict(checks=checks, answered=answered, in_target=in_target, ack_rate=_rate(answered, checks),
                in_target_rate=_rate(in_target, checks), median_ms=median, p90_ms=p90)


def _answered_only(src: Any) -> Any:
    """The answered, counted checks of ``src``, as the percentile query wants them."""
    return (
        sa.select(src, src.c.id.label("ping_id"))
        .where(src.c.status.in_(COUNTED), src.c.outcome.in_(ANSWERED), src.c.response_ms.is_not(None))
        .subquery("answered")
    )


def _runs(conn: sa.Connection, start: datetime, end: datetime) -> list[MonthRun]:
    checks, answered, _ = _aggregates(CF)
    per_run = (
        sa.select(CF.c.run_id, checks.label("checks"), answered.label("answered"),
                  sa.func.max(sa.case((CF.c.simulated.is_(True), 1), else_=0)).label("simulated"))
        .where(CF.c.fire_at >= start, CF.c.fire_at < end)
        .group_by(CF.c.run_id).subquery("per_run")
    )
    rows = conn.execute(
        sa.select(R, per_run.c.checks, per_run.c.answered, per_run.c.simulated)
        .outerjoin(per_run, per_run.c.run_id == R.c.id)
        .where(R.c.fire_at >= start, R.c.fire_at < end, R.c.trigger != CHANNEL_TEST_TRIGGER)
        .order_by(R.c.fire_at, R.c.id)
    )
    return [
        MonthRun(id=r.id, playbook_id=r.playbook_id, status=r.status, trigger=r.trigger, announced=r.announced,
                 fire_at=r.fire_at, checks=int(r.checks or 0), answered=int(r.answered or 0),
                 simulated=bool(r.simulated))
        for r in rows
    ]


def _trend(conn: sa.Connection, labels: list[str], bounds: list[datetime], timezone: str,
           now: datetime | None, times: list[tuple[str, str, int]]) -> tuple[list[TrendPoint], list[Kept]]:
    """The twelve months' points, and those newly computed that are settled (to be kept).

    A kept month is read only while its closed runs are still those it came from (how many, and
    the highest id); the report's own month is always computed from its checks."""
    stored: dict[str, dict[str, Any]] = {}
    if now is not None:
        for r in conn.execute(sa.select(MR).where(MR.c.timezone == timezone, MR.c.month.in_(labels))):
            stored.setdefault(r.month, {})[r.channel] = r
    signatures = _signatures(conn, labels, bounds) if now is not None else {}
    points: list[TrendPoint] = []
    settled: list[Kept] = []
    for i, label in enumerate(labels):
        rows = stored.get(label)
        last = i == len(labels) - 1
        if not last and rows is not None and "" in rows and \
                (rows[""].closed_runs, rows[""].last_run_id) == signatures.get(label, (0, 0)):
            points.append(_point_of(label, rows))
            continue
        point = _month_point(conn, label, bounds[i], bounds[i + 1], times if last else None)
        points.append(point)
        if now is not None and _is_settled(conn, bounds[i], bounds[i + 1], now):
            settled.append(Kept(point, *signatures.get(label, (0, 0))))
    return points, settled


@dataclass(frozen=True)
class Kept:
    """A settled month's figures and the runs they came from."""

    point: TrendPoint
    closed_runs: int
    last_run_id: int


def _signatures(conn: sa.Connection, labels: list[str], bounds: list[datetime]) -> dict[str, tuple[int, int]]:
    """Per month: how many closed runs fired in it, and the highest id among them. A run's checks
    are written once, when it closes: the same runs, the same checks."""
    bucket = sa.case(*((sa.and_(R.c.fire_at >= bounds[i], R.c.fire_at < bounds[i + 1]), labels[i])
                       for i in range(len(labels))), else_=sa.null()).label("m")
    return {m: (int(n), int(last or 0)) for m, n, last in conn.execute(
        sa.select(bucket, sa.func.count(), sa.func.max(R.c.id))
        .where(R.c.fire_at >= bounds[0], R.c.fire_at < bounds[-1], R.c.status.in_(("completed", "aborted")))
        .group_by(bucket))}


def _month_point(conn: sa.Connection, label: str, start: datetime, end: datetime,
                 times: list[tuple[str, str, int]] | None = None) -> TrendPoint:
    """One month's figures from its own checks (an index range, never the whole year)."""
    month = _in_month(start, end).subquery("month")
    checks, answered, in_target = _aggregates(month)
    by_channel = {c: tuple(int(x or 0) for x in rest) for c, *rest in conn.execute(
        sa.select(month.c.channel, checks, answered, in_target).group_by(month.c.channel))}
    times = _answered_times(conn, start, end) if times is None else times
    runs = conn.execute(
        sa.select(sa.func.count()).select_from(R)
        .where(R.c.fire_at >= start, R.c.fire_at < end, R.c.status == "completed",
               R.c.trigger != CHANNEL_TEST_TRIGGER)).scalar_one()
    n, a, it = (sum(v[k] for v in by_channel.values()) for k in range(3))
    _, median, p90 = nearest_rank([ms for _, _, ms in times])
    channels = {}
    for c, (cn, ca, cit) in sorted(by_channel.items()):
        if cn:
            _, cm, cp = nearest_rank([ms for _, ch, ms in times if ch == c])
            channels[c] = Stats(**_stats(cn, ca, cit, cm, cp))
    return TrendPoint(month=label, runs=int(runs), channels=channels, **_stats(n, a, it, median, p90))


def _answered_times(conn: sa.Connection, start: datetime, end: datetime) -> list[tuple[str, str, int]]:
    """(organisation, channel, response ms) of the month's answered counted checks, fastest
    first (ties in a stable order): one read serves every percentile of the month."""
    month = _in_month(start, end).subquery("month")
    return [(r[0], r[1], int(r[2])) for r in conn.execute(
        sa.select(month.c.organisation_code, month.c.channel, month.c.response_ms)
        .where(month.c.status.in_(COUNTED), month.c.outcome.in_(ANSWERED), month.c.response_ms.is_not(None))
        .order_by(month.c.response_ms, month.c.id))]


def _point_of(label: str, rows: dict[str, Any]) -> TrendPoint:
    total = rows[""]
    channels = {c: Stats(**_stats(r.checks, r.answered, r.in_target, r.median_ms, r.p90_ms))
                for c, r in sorted(rows.items()) if c}
    return TrendPoint(month=label, runs=total.runs, channels=channels,
                      **_stats(total.checks, total.answered, total.in_target, total.median_ms, total.p90_ms))


def _is_settled(conn: sa.Connection, start: datetime, end: datetime, now: datetime) -> bool:
    """Over, and every run in it closed: its figures can no longer change."""
    if end > now:
        return False
    open_runs = conn.execute(sa.select(sa.func.count()).select_from(R).where(
        R.c.fire_at >= start, R.c.fire_at < end, R.c.status.in_(("planned", "running")))).scalar_one()
    return not open_runs


def store_rollups(engine: Engine, kept: list[Kept], now: datetime, timezone: str = "Europe/Brussels") -> None:
    """Keep the figures of settled months (one short write), replacing what was kept of them."""
    from commtest.db import run_write

    def row(k: Kept, channel: str, stats: Stats, runs: int) -> dict[str, Any]:
        return {"timezone": timezone, "month": k.point.month, "channel": channel, "runs": runs, "checks": stats.checks,
                "answered": stats.answered, "in_target": stats.in_target, "median_ms": stats.median_ms,
                "p90_ms": stats.p90_ms, "closed_runs": k.closed_runs, "last_run_id": k.last_run_id,
                "computed_at": now}

    rows = []
    for k in kept:
        rows.append(row(k, "", k.point, k.point.runs))
        rows.extend(row(k, c, st, 0) for c, st in k.point.channels.items())

    def work(s: Any) -> None:
        conn = s.connection()
        conn.execute(MR.delete().where(MR.c.timezone == timezone, MR.c.month.in_([k.point.month for k in kept])))
        conn.execute(MR.insert(), rows)

    try:
        run_write(engine, work)
    except Exception:  # a cache: the report stands without it, and the next one keeps it
        log.warning("could not keep the figures of settled months", exc_info=True)


def _breaches(conn: sa.Connection, start: datetime, end: datetime) -> list[Breach]:
    rows = conn.execute(
        sa.select(VF).where(VF.c.fire_at >= start, VF.c.fire_at < end, VF.c.simulated.is_(False),
                            VF.c.verdict.in_(("fail", "no_endpoint")), _not_channel_test(VF.c.run_id))
        .order_by(VF.c.fire_at, VF.c.run_id, VF.c.organisation_code, VF.c.channel)
    ).all()
    return [Breach(run_id=r.run_id, organisation=r.organisation_code, channel=r.channel, verdict=r.verdict,
                   target_ms=r.target_ms, checks=r.checks, in_target=r.in_target) for r in rows]


def _per_org_channel(conn: sa.Connection, this_month: Any, breaches: list[Breach],
                     times: list[tuple[str, str, int]]) -> list[OrgChannelStats]:
    checks, answered, in_target = _aggregates(this_month)
    group = (this_month.c.organisation_code, this_month.c.channel)
    counts = {(o, c): tuple(int(x or 0) for x in rest) for o, c, *rest in conn.execute(
        sa.select(*group, checks, answered, in_target).group_by(*group))}
    grouped: dict[tuple[str, str], list[int]] = {}
    for org, channel, ms in times:
        grouped.setdefault((org, channel), []).append(ms)
    pct = {key: nearest_rank(values) for key, values in grouped.items()}
    keys = {k for k, v in counts.items() if v[0]} | {(b.organisation, b.channel) for b in breaches}
    out = []
    for org, channel in sorted(keys):
        n, a, it = counts.get((org, channel), (0, 0, 0))
        _, median, p90 = pct.get((org, channel), (0, None, None))
        failed = len({b.run_id for b in breaches if (b.organisation, b.channel) == (org, channel)})
        out.append(OrgChannelStats(organisation=org, channel=channel, failed_runs=failed,
                                   **_stats(n, a, it, median, p90)))
    return out


def _simulated(conn: sa.Connection, start: datetime, end: datetime) -> SimulatedTotals:
    checks, answered, _ = _aggregates(CF)
    n, a, runs = conn.execute(
        sa.select(checks, answered, sa.func.count(sa.distinct(CF.c.run_id)))
        .where(CF.c.fire_at >= start, CF.c.fire_at < end, CF.c.simulated.is_(True), _not_channel_test(CF.c.run_id))
    ).one()
    return SimulatedTotals(checks=int(n or 0), answered=int(a or 0), runs=int(runs or 0))


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


_CHECK_COLUMNS = (CF.c.organisation_code, CF.c.field_code, CF.c.channel, CF.c.contact_point_code, CF.c.contact_point_id,
                  CF.c.address, CF.c.outcome, CF.c.status, CF.c.suspicious, CF.c.detail, CF.c.run_id)
ENDPOINT_FAULTS = ("bounced", "invalid_endpoint", "blocked")
_ORDER = ("repeated_failure", "fix_endpoint", "unblock_number", "failed_check", "late_answer", "check_endpoint",
          "possible_scanner", "no_contact_point", "fix_template", "not_tested", "stale_endpoint")


def _real(end: datetime) -> Any:
    return sa.and_(CF.c.fire_at < end, CF.c.simulated.is_(False), _not_channel_test(CF.c.run_id))


def _action_points(conn: sa.Connection, start: datetime, end: datetime) -> list[MonthActionPoint]:
    """Open at the month's end, each with what to do:

    * this month's failed checks (twice or more in a row: repeated; bounced or refused: fix the
      endpoint), answers by a possible mail scanner, checks our side could not make (a template
      that failed: fix the playbook), and contact points or endpoints missing;
    * from earlier months, those still open: a contact point and channel whose last check
      failed and has not passed since, whose last answer came from a possible scanner, whose
      last check our side could not make, an endpoint flagged suspect or invalid and not proven
      since, and a gap no later check filled.
    """
    points: dict[tuple[str, ...], MonthActionPoint] = {}
    names = dict(conn.execute(sa.select(CP.c.id, CP.c.name)).all())
    templates = _TemplateSteps(conn)

    def add(key: tuple[str, ...], kind: str, r: Any, since: datetime, earlier: bool, failures: int = 1) -> None:
        previous = points.get(key)
        step, template, detail = "", "", ""
        if kind == "fix_template":
            step, template = templates.of(r.run_id, r.contact_point_id, r.channel)
            detail = template_failure(r.detail or "")
        points[key] = MonthActionPoint(
            kind=kind, organisation=r.organisation_code, field=r.field_code, channel=r.channel,  # type: ignore[arg-type]
            contact_point=names.get(r.contact_point_id, r.contact_point_code), address=r.address, reason=r.outcome,
            since=previous.since if previous else since, failures=failures, from_earlier_month=earlier,
            detail=detail, step=step, template=template,
        )

    streaks: dict[tuple[int, str], tuple[int, datetime | None]] = {}

    def failure(r: Any, earlier: bool) -> None:
        pair = (r.contact_point_id, r.channel)
        if pair not in streaks:  # one look back per contact point and channel, however many failures
            streaks[pair] = _failure_streak(conn, r.contact_point_id, r.channel, end)
        streak, first = streaks[pair]
        kind = "unblock_number" if r.outcome == "blocked" else "fix_endpoint" if r.outcome in ENDPOINT_FAULTS else (
            "repeated_failure" if streak >= 2 else "late_answer" if r.outcome in ANSWERED else "failed_check")
        add(("check", r.organisation_code, r.channel, str(r.contact_point_id)), kind, r,
            (first or r.at) if earlier else r.at, earlier, max(streak, 1))

    def our_side(r: Any, earlier: bool) -> None:
        kind = "fix_template" if r.outcome == "template_error" else "not_tested"
        add(("our_side", r.organisation_code, r.channel, str(r.contact_point_id)), kind, r, r.at, earlier)

    def scanner(r: Any, earlier: bool) -> None:
        add(("scanner", r.organisation_code, r.channel, str(r.contact_point_id)), "possible_scanner", r, r.at, earlier)

    this_month = conn.execute(
        sa.select(*_CHECK_COLUMNS, ts(CF.c.fire_at).label("at"))
        .where(CF.c.fire_at >= start, _real(end),
               sa.or_(CF.c.status.in_(("fail", "not_tested")), CF.c.suspicious.is_(True)))
        .order_by(CF.c.fire_at, CF.c.run_id)
    ).all()
    for r in this_month:
        if r.status == "fail":
            failure(r, earlier=False)
        elif r.status == "not_tested":
            our_side(r, earlier=False)
        if r.suspicious and r.status in COUNTED:
            scanner(r, earlier=False)
    # Still open from earlier months: the last check of its kind fell before this month.
    for r in _last_checks(conn, end, CF.c.status.in_(COUNTED)):
        # A number that replied STOP stays open through its endpoint's flag (until it sends START).
        if r.at < start and r.status == "fail" and r.outcome != "blocked":
            failure(r, earlier=True)
    for r in _last_checks(conn, end, CF.c.status.in_((*COUNTED, "not_tested"))):
        if r.at < start and r.status == "not_tested":
            our_side(r, earlier=True)
    for r in _last_checks(conn, end, sa.and_(CF.c.status.in_(COUNTED), CF.c.outcome.in_(ANSWERED))):
        if r.at < start and r.suspicious:
            scanner(r, earlier=True)
    _endpoint_flags(conn, start, end, points)
    _gaps(conn, start, end, points)
    return sorted(points.values(), key=lambda a: (_ORDER.index(a.kind), a.organisation, a.channel, a.contact_point,
                                                  a.address))


def _last_checks(conn: sa.Connection, end: datetime, which: Any) -> list[Any]:
    """Per contact point and channel of the directory, the last real check before ``end`` among
    ``which``: one index seek per pair (``ix_check_fact_pair``), never a pass over the history."""
    later = CF.alias("later")
    adapt = ClauseAdapter(later).traverse
    pairs = sa.select(EP.c.contact_point_id.label("cp"), EP.c.kind.label("channel")).distinct().subquery("pairs")
    last = (sa.select(later.c.id)
            .where(later.c.contact_point_id == pairs.c.cp, later.c.channel == pairs.c.channel, adapt(_real(end)),
                   adapt(which))
            .order_by(later.c.fire_at.desc(), later.c.run_id.desc()).limit(1).scalar_subquery())
    return list(conn.execute(sa.select(*_CHECK_COLUMNS, ts(CF.c.fire_at).label("at"))
                             .select_from(pairs).join(CF, CF.c.id == last)
                             .order_by(CF.c.fire_at, CF.c.run_id)).all())


def _endpoint_flags(conn: sa.Connection, start: datetime, end: datetime,
                    points: dict[tuple[str, ...], MonthActionPoint]) -> None:
    """Endpoints whose last flag before ``end`` is suspect, invalid or blocked and not proven
    (or, blocked, unblocked) since."""
    later = E.alias("later")
    eid = E.c.data["endpoint_id"].as_integer()
    proven_after = sa.exists().where(
        later.c.kind == ev.ENDPOINT_VERIFIED, later.c.data["endpoint_id"].as_integer() == eid,
        later.c.at >= E.c.at, later.c.at < end)
    last_status = (
        sa.select(sa.func.max(E.c.id).label("id")).where(E.c.kind == ev.ENDPOINT_STATUS, E.c.at < end)
        .group_by(eid).subquery("last_status")
    )
    status = E.c.data["status"].as_string()
    marked = conn.execute(
        sa.select(eid.label("endpoint_id"), status.label("status"), ts(E.c.at).label("at"))
        .join(last_status, last_status.c.id == E.c.id)
        .where(status.in_((EndpointStatus.suspect.value, EndpointStatus.invalid.value, EndpointStatus.blocked.value)),
               ~proven_after)
    ).all()
    if not marked:
        return
    rows = {r.id: r for r in conn.execute(
        sa.select(EP.c.id, EP.c.kind, EP.c.address, CP.c.name, CP.c.id.label("cp_id"), ORG.c.code,
                  FW.c.code.label("field"))
        .join(CP, CP.c.id == EP.c.contact_point_id).join(ORG, ORG.c.id == CP.c.organisation_id)
        .join(FW, FW.c.id == CP.c.field_id).where(EP.c.id.in_([m.endpoint_id for m in marked])))}
    for m in marked:
        r = rows.get(m.endpoint_id)
        if r is None or ("check", r.code, r.kind, str(r.cp_id)) in points:
            continue
        points[("endpoint", str(m.endpoint_id))] = MonthActionPoint(
            kind="fix_endpoint" if m.status == "invalid" else "unblock_number" if m.status == "blocked" else
            "check_endpoint", organisation=r.code,
            field=r.field, channel=r.kind, contact_point=r.name, address=r.address, reason=m.status, since=m.at,
            from_earlier_month=m.at < start,
        )


def _gaps(conn: sa.Connection, start: datetime, end: datetime, points: dict[tuple[str, ...], MonthActionPoint]) -> None:
    """Nothing to ping (no contact point, or none of its endpoints on a channel): this month's,
    and earlier months' that no later check filled (a check of that organisation, field, channel
    and contact point means something could be pinged)."""
    gap_cols = (
        sa.func.coalesce(E.c.organisation_code, E.c.data["organisation_code"].as_string()),
        E.c.data["field"].as_string(),
        sa.func.coalesce(E.c.channel, E.c.data["channel"].as_string()),
        E.c.data["contact_point"].as_string(),
        E.c.data["reason"].as_string(),
    )
    # Grouped by the expressions, not their labels: PostgreSQL reads a label such as
    # "channel" in GROUP BY as the input column of that name.
    gaps = conn.execute(
        sa.select(*(c.label(n) for c, n in zip(gap_cols, ("org", "field", "channel", "cp", "reason"), strict=True)),
                  ts(sa.func.min(E.c.at)).label("at"), ts(sa.func.max(R.c.fire_at)).label("last_run"),
                  sa.func.max(sa.case((R.c.fire_at >= start, 1), else_=0)).label("this_month"))
        .join(R, R.c.id == E.c.run_id)
        .where(E.c.kind == ev.RUN_GAP, R.c.fire_at < end)
        .group_by(*gap_cols)
    ).all()
    for g in gaps:
        key = ("gap", str(g.org), str(g.field), str(g.channel), str(g.cp))
        if not g.this_month:
            filled = [CF.c.organisation_code == g.org, CF.c.channel == g.channel, CF.c.fire_at > g.last_run,
                      CF.c.fire_at < end]
            filled += [CF.c.field_code == g.field] if g.field else []
            filled += [CF.c.contact_point_code == g.cp] if g.cp else []
            if conn.execute(sa.select(CF.c.id).where(*filled).limit(1)).first() is not None or key in points:
                continue
        previous = points.get(key)
        points[key] = MonthActionPoint(
            kind="no_contact_point", organisation=g.org or "", field=g.field or "", channel=g.channel or "",
            contact_point=g.cp or "", address="", reason=g.reason or "",
            since=min(previous.since, g.at) if previous and previous.since else g.at,
            from_earlier_month=not g.this_month)


def _stale_endpoints(conn: sa.Connection, end: datetime, stale_after_days: int) -> list[MonthActionPoint]:
    """The endpoints of active contact points (not marked invalid) not proven reachable in the
    ``stale_after_days`` before the month's end: no run proved them then (``endpoint.verified``)
    and the directory records no proof since (``verified_at``)."""
    cutoff = end - timedelta(days=stale_after_days)
    proven = sa.select(E.c.data["endpoint_id"].as_integer()).where(
        E.c.kind == ev.ENDPOINT_VERIFIED, E.c.at >= cutoff, E.c.at < end)
    rows = conn.execute(
        sa.select(EP.c.kind, EP.c.address, ts(EP.c.verified_at).label("verified_at"), CP.c.name, CP.c.code.label("cp"),
                  ORG.c.code, FW.c.code.label("field"))
        .join(CP, CP.c.id == EP.c.contact_point_id).join(ORG, ORG.c.id == CP.c.organisation_id)
        .join(FW, FW.c.id == CP.c.field_id)
        .where(CP.c.active.is_(True), EP.c.status != EndpointStatus.invalid.value, EP.c.id.not_in(proven),
               sa.or_(EP.c.verified_at.is_(None), EP.c.verified_at < cutoff))
        .order_by(ORG.c.code, CP.c.name, EP.c.kind, EP.c.address)
    ).all()
    return [
        MonthActionPoint(kind="stale_endpoint", organisation=r.code, field=r.field, channel=r.kind, contact_point=r.name,
                         address=r.address, reason="", since=r.verified_at, from_earlier_month=False)
        for r in rows
    ]


class _TemplateSteps:
    """The step and template of an attempt whose template failed, from its run's playbook revision."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.revisions: dict[int, dict[str, str]] = {}

    def of(self, run_id: int, contact_point_id: int, channel: str) -> tuple[str, str]:
        row = self.conn.execute(
            sa.select(P.c.step, R.c.revision_id).join(R, R.c.id == P.c.run_id)
            .where(P.c.run_id == run_id, P.c.contact_point_id == contact_point_id, P.c.channel == channel,
                   P.c.outcome == "template_error").order_by(P.c.id).limit(1)
        ).first()
        if row is None:
            return "", ""
        if row.revision_id not in self.revisions:
            source = self.conn.execute(sa.select(REV.c.source_text).where(REV.c.id == row.revision_id)).scalar()
            try:
                self.revisions[row.revision_id] = playbook_facts(source or "").step_templates
            except RevisionUnreadable:
                self.revisions[row.revision_id] = {}
        return row.step, self.revisions[row.revision_id].get(row.step, "")


def _failure_streak(conn: sa.Connection, contact_point_id: int, channel: str, end: datetime) -> tuple[int, datetime | None]:
    """How many of the last counted checks of (contact point, channel) before ``end`` failed in
    a row, and when the first of them was."""
    rows = conn.execute(
        sa.select(CF.c.status, ts(CF.c.fire_at).label("at"))
        .where(CF.c.contact_point_id == contact_point_id, CF.c.channel == channel, CF.c.fire_at < end,
               CF.c.status.in_(COUNTED), CF.c.simulated.is_(False))
        .order_by(CF.c.fire_at.desc(), CF.c.run_id.desc()).limit(12)
    ).all()
    streak, first = 0, None
    for row in rows:
        if row.status != "fail":
            break
        streak, first = streak + 1, row.at
    return streak, first
