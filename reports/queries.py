"""SQL over the event log that both the test report and the monthly report use.

Everything here is computed by the database (GROUP BY, window functions) and portable
between SQLite (>= 3.25) and PostgreSQL, so both give the same numbers.

Definitions
-----------
* A ping's outcome is its **last** ``ping.settled`` event (highest id).
* A ping is **acknowledged** when that event has a ``response_ms`` and an outcome in
  ``ACK_OUTCOMES``.
* Percentiles use the **nearest-rank** method on the acknowledged pings' response
  times: P(p) is the value at rank ceil(p/100 * n) of the ascending list, so the median
  is the value at rank ceil(n/2) (the lower middle value when n is even). No
  interpolation: a reported time is always one that was measured. Computed in SQL with
  ``row_number()``/``count()`` windows and integer ceilings, identical on both databases.
* Verdict per run x organisation x channel: ``pass`` when every contact point pinged on
  that channel has its first acknowledged attempt within the playbook's target (or, when
  the playbook sets no target for the channel, was acknowledged in time at all), and no
  contact point of the organisation had nothing to ping (``run.gap``); ``no_endpoint``
  when the organisation had no ping on a channel the playbook needs; ``pending`` while a
  run is still running with unsettled pings; else ``fail``.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.elements import ColumnElement

from commtest import events as ev
from commtest.models import Event, Outcome, Ping, RunStatus, TestRun, UTCDateTime

ACK_OUTCOMES = (Outcome.acked.value, Outcome.acked_late.value, Outcome.manual.value)

E = Event.__table__  # type: ignore[attr-defined]
P = Ping.__table__  # type: ignore[attr-defined]
R = TestRun.__table__  # type: ignore[attr-defined]


def last_settled(run_filter: ColumnElement[bool]) -> sa.Subquery:
    """One row per settled ping of the runs ``run_filter`` selects (a condition on ``E``):
    run_id, ping_id, organisation_code, channel, outcome, response_ms, at."""
    last_ids = (
        sa.select(sa.func.max(E.c.id).label("id"))
        .where(E.c.kind == ev.PING_SETTLED, run_filter)
        .group_by(E.c.ping_id)
        .subquery("last_ids")
    )
    return (
        sa.select(
            E.c.run_id,
            E.c.ping_id,
            E.c.organisation_code,
            E.c.channel,
            E.c.outcome,
            E.c.response_ms,
            E.c.at,
        )
        .join(last_ids, last_ids.c.id == E.c.id)
        .subquery("settled")
    )


def acknowledged(settled: sa.Subquery) -> ColumnElement[bool]:
    return sa.and_(settled.c.response_ms.is_not(None), settled.c.outcome.in_(ACK_OUTCOMES))


def nearest_rank_percentiles(
    conn: sa.Connection, settled: sa.Subquery, group_by: Sequence[str]
) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    """{group: (n, median, p90)} over acknowledged pings, nearest-rank, computed in SQL."""
    cols = [settled.c[name] for name in group_by]
    ranked = (
        sa.select(
            *cols,
            settled.c.response_ms.label("ms"),
            sa.func.row_number().over(partition_by=cols, order_by=(settled.c.response_ms, settled.c.ping_id)).label("rn"),
            sa.func.count().over(partition_by=cols).label("n"),
        )
        .where(acknowledged(settled))
        .subquery("ranked")
    )
    rcols = [ranked.c[name] for name in group_by]
    # ceil(n/2) = (n+1)/2 and ceil(9n/10) = (9n+9)/10 in integer division on both databases.
    median = sa.func.max(sa.case((ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.ms)))
    p90 = sa.func.max(sa.case((ranked.c.rn == (ranked.c.n * 9 + 9) // 10, ranked.c.ms)))
    q = sa.select(*rcols, sa.func.max(ranked.c.n), median, p90).group_by(*rcols)
    out: dict[tuple[Any, ...], tuple[int, int, int]] = {}
    for row in conn.execute(q):
        key = tuple(row[: len(group_by)])
        out[key] = (int(row[-3]), int(row[-2]), int(row[-1]))
    return out


@dataclass(frozen=True)
class VerdictRow:
    run_id: int
    organisation: str
    channel: str
    target_ms: int | None
    contact_points: int  # contact points pinged on this channel
    in_target: int  # of which the first acknowledged attempt was within the target
    gaps: int  # contact points that had nothing to ping (run.gap)
    unsettled: int  # pings without an outcome yet
    verdict: str


def verdicts(
    conn: sa.Connection,
    run_ids: Sequence[int],
    targets: Mapping[tuple[int, str], int],
    needed: Mapping[int, tuple[tuple[str, ...], tuple[str, ...]]],
    running: Iterable[int] = (),
) -> list[VerdictRow]:
    """Verdicts of the given runs. ``targets``: {(run_id, channel): ms};
    ``needed``: {run_id: (participants, needed channels)}; ``running``: runs not finished."""
    if not run_ids:
        return []
    in_runs = E.c.run_id.in_(run_ids)
    settled = last_settled(in_runs)
    with_cp = (
        sa.select(settled, P.c.contact_point_id, P.c.attempt)
        .join(P, P.c.id == settled.c.ping_id)
        .subquery("with_cp")
    )
    first_ack = (
        sa.select(
            with_cp,
            sa.func.row_number()
            .over(
                partition_by=(with_cp.c.run_id, with_cp.c.channel, with_cp.c.contact_point_id),
                order_by=(with_cp.c.attempt, with_cp.c.ping_id),
            )
            .label("rn"),
        )
        .where(with_cp.c.response_ms.is_not(None), with_cp.c.outcome.in_(ACK_OUTCOMES))
        .subquery("first_ack")
    )
    target = _target_case(first_ack.c.run_id, first_ack.c.channel, targets)
    ok = sa.case(
        (sa.and_(target.is_(None), first_ack.c.outcome != Outcome.acked_late.value), 1),
        (first_ack.c.response_ms <= target, 1),
        else_=0,
    )
    ok_q = (
        sa.select(first_ack.c.run_id, first_ack.c.organisation_code, first_ack.c.channel, sa.func.sum(ok))
        .where(first_ack.c.rn == 1)
        .group_by(first_ack.c.run_id, first_ack.c.organisation_code, first_ack.c.channel)
    )
    planned_q = (
        sa.select(
            E.c.run_id,
            E.c.organisation_code,
            E.c.channel,
            sa.func.count(sa.distinct(P.c.contact_point_id)),
            sa.func.count(sa.distinct(P.c.id)),
        )
        .join(P, P.c.id == E.c.ping_id)
        .where(in_runs, E.c.kind == ev.PING_PLANNED)
        .group_by(E.c.run_id, E.c.organisation_code, E.c.channel)
    )
    settled_q = (
        sa.select(settled.c.run_id, settled.c.organisation_code, settled.c.channel, sa.func.count())
        .group_by(settled.c.run_id, settled.c.organisation_code, settled.c.channel)
    )
    # Pings that failed on our side (provider down, crash while sending) do not test the centre.
    ours_q = (
        sa.select(settled.c.run_id, settled.c.organisation_code, settled.c.channel, sa.func.count())
        .where(settled.c.outcome.in_((Outcome.provider_failure.value, Outcome.unknown.value)))
        .group_by(settled.c.run_id, settled.c.organisation_code, settled.c.channel)
    )
    gap_org = sa.func.coalesce(E.c.organisation_code, E.c.data["organisation_code"].as_string())
    gap_channel = sa.func.coalesce(E.c.channel, E.c.data["channel"].as_string())
    gaps_q = (
        sa.select(E.c.run_id, gap_org, gap_channel, sa.func.count())
        .where(in_runs, E.c.kind == ev.RUN_GAP)
        .group_by(E.c.run_id, gap_org, gap_channel)
    )
    planned = {(r, o, c): (int(cps), int(n)) for r, o, c, cps, n in conn.execute(planned_q)}
    oks = {(r, o, c): int(n or 0) for r, o, c, n in conn.execute(ok_q)}
    settled_n = {(r, o, c): int(n) for r, o, c, n in conn.execute(settled_q)}
    gaps = {(r, o, c): int(n) for r, o, c, n in conn.execute(gaps_q)}
    ours = {(r, o, c): int(n) for r, o, c, n in conn.execute(ours_q)}
    running_set = set(running)

    keys = set(planned) | set(gaps)
    for run_id, (orgs, channels) in needed.items():
        keys.update((run_id, o, c) for o in orgs for c in channels)
    rows = []
    for key in sorted(keys):
        run_id, org, channel = key
        cps, n_pings = planned.get(key, (0, 0))
        unsettled = n_pings - settled_n.get(key, 0)
        in_target, n_gaps = oks.get(key, 0), gaps.get(key, 0)
        if cps == 0:
            verdict = "no_endpoint"
        elif in_target == cps and n_gaps == 0:
            verdict = "pass"
        elif unsettled and run_id in running_set:
            verdict = "pending"
        elif in_target == 0 and not unsettled and settled_n.get(key, 0) and ours.get(key, 0) == settled_n.get(key, 0):
            verdict = "not_tested"  # every attempt failed on our side: not the centre's fault
        else:
            verdict = "fail"
        rows.append(
            VerdictRow(run_id, org, channel, targets.get((run_id, channel)), cps, in_target, n_gaps, unsettled, verdict)
        )
    return rows


def _target_case(run_col: Any, channel_col: Any, targets: Mapping[tuple[int, str], int]) -> Any:
    if not targets:
        return sa.null()
    whens = [(sa.and_(run_col == r, channel_col == c), ms) for (r, c), ms in sorted(targets.items())]
    return sa.case(*whens, else_=sa.null())


def running_statuses() -> tuple[str, ...]:
    return (RunStatus.running.value, RunStatus.planned.value)


def ts(expr: Any) -> Any:
    """Keep aggregates of timestamps aware UTC on SQLite (which returns strings)."""
    return sa.type_coerce(expr, UTCDateTime())
