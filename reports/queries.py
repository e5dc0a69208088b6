"""SQL helpers the reports share, portable between SQLite (>= 3.25) and PostgreSQL.

Percentiles use the **nearest-rank** method on the answered checks' response times: P(p) is
the value at rank ceil(p/100 * n) of the ascending list, so the median is the value at rank
ceil(n/2) (the lower middle value when n is even). No interpolation: a reported time is always
one that was measured. Computed in SQL with ``row_number()``/``count()`` windows and integer
ceilings, identical on both databases.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from commtest.models import Event, Ping, RunStatus, TestRun, UTCDateTime

E = Event.__table__  # type: ignore[attr-defined]
P = Ping.__table__  # type: ignore[attr-defined]
R = TestRun.__table__  # type: ignore[attr-defined]


def nearest_rank_percentiles(
    conn: sa.Connection, rows: Any, group_by: Sequence[str],
) -> dict[tuple[Any, ...], tuple[int, int, int]]:
    """{group: (n, median, p90)} over the ``response_ms`` of ``rows`` (a subquery with a
    ``ping_id`` column for a stable order among equal times), nearest rank, in SQL."""
    cols = [rows.c[name] for name in group_by]
    ranked = (
        sa.select(
            *cols,
            rows.c.response_ms.label("ms"),
            sa.func.row_number().over(partition_by=cols, order_by=(rows.c.response_ms, rows.c.ping_id)).label("rn"),
            sa.func.count().over(partition_by=cols).label("n"),
        )
        .where(rows.c.response_ms.is_not(None))
        .subquery("ranked")
    )
    rcols = [ranked.c[name] for name in group_by]
    # ceil(n/2) = (n+1)/2 and ceil(9n/10) = (9n+9)/10 in integer division on both databases.
    median = sa.func.max(sa.case((ranked.c.rn == (ranked.c.n + 1) // 2, ranked.c.ms)))
    p90 = sa.func.max(sa.case((ranked.c.rn == (ranked.c.n * 9 + 9) // 10, ranked.c.ms)))
    q = sa.select(*rcols, sa.func.max(ranked.c.n), median, p90).group_by(*rcols)
    out: dict[tuple[Any, ...], tuple[int, int, int]] = {}
    for row in conn.execute(q):
        if row[-3] is None:
            continue  # no rows at all (without groups, the aggregate still answers one row of NULLs)
        key = tuple(row[: len(group_by)])
        out[key] = (int(row[-3]), int(row[-2]), int(row[-1]))
    return out


def nearest_rank(ordered: Sequence[int]) -> tuple[int, int | None, int | None]:
    """(n, median, p90) of values already in ascending order, nearest rank: the same numbers
    ``nearest_rank_percentiles`` computes in SQL (ranks ceil(n/2) and ceil(9n/10))."""
    n = len(ordered)
    if not n:
        return 0, None, None
    return n, ordered[(n + 1) // 2 - 1], ordered[(n * 9 + 9) // 10 - 1]


def running_statuses() -> tuple[str, ...]:
    return (RunStatus.running.value, RunStatus.planned.value)


def ts(expr: Any) -> Any:
    """Keep aggregates of timestamps aware UTC on SQLite (which returns strings)."""
    return sa.type_coerce(expr, UTCDateTime())
