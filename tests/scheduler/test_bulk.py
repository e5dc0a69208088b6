"""scheduler.bulk: one conditional UPDATE for many rows, each with its own values."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.models import UTCDateTime
from scheduler.bulk import row_value, update_each

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)


@pytest.fixture
def probe(engine: Engine) -> Iterator[sa.Table]:
    table = sa.Table("bulk_probe", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("state", sa.String(20), nullable=False), sa.Column("tag", sa.String(40)),
                     sa.Column("at", UTCDateTime(timezone=True)))
    table.create(engine)
    with engine.begin() as c:
        c.execute(table.insert(), [{"id": i, "state": "pending", "tag": None, "at": None} for i in range(1, 101)])
    yield table
    table.drop(engine)


def _claim(engine: Engine, table: sa.Table, ids: list[int]) -> set[int] | None:
    with engine.begin() as c:
        return update_each(
            c, table, [{"id": i, "tag": f"token-{i}", "at": T0 + timedelta(seconds=i)} for i in ids],
            only_if=table.c.state == "pending",
            values={"state": "dispatching", "tag": row_value("tag"), "at": row_value("at")},
            per_row={"tag": table.c.tag.type, "at": table.c.at.type})


def test_every_row_gets_its_own_values_in_one_statement(engine: Engine, probe: sa.Table) -> None:
    assert _claim(engine, probe, list(range(1, 65))) == set(range(1, 65))
    with engine.connect() as c:
        rows = {r.id: r for r in c.execute(sa.select(probe))}
    assert rows[7].state == "dispatching" and rows[7].tag == "token-7"
    assert rows[7].at == T0 + timedelta(seconds=7)  # a time zone-aware value survives the array on PostgreSQL
    assert rows[65].state == "pending" and rows[65].tag is None


def test_rows_no_longer_in_the_expected_state_are_left_alone_and_not_reported(engine: Engine, probe: sa.Table) -> None:
    with engine.begin() as c:  # another writer took two of them first
        c.execute(probe.update().where(probe.c.id.in_([3, 5])).values(state="cancelled"))
    done = _claim(engine, probe, [1, 2, 3, 4, 5])
    # PostgreSQL names the rows updated; SQLite can only say "not all" (the caller reads them back).
    assert done in ({1, 2, 4}, None)
    with engine.connect() as c:
        states = dict(c.execute(sa.select(probe.c.id, probe.c.state).where(probe.c.id <= 5)).all())
        tags = dict(c.execute(sa.select(probe.c.id, probe.c.tag).where(probe.c.id <= 5)).all())
    assert states == {1: "dispatching", 2: "dispatching", 3: "cancelled", 4: "dispatching", 5: "cancelled"}
    assert tags[3] is None and tags[5] is None


def test_batches_of_one_row_many_rows_or_none_are_updated_alike(engine: Engine, probe: sa.Table) -> None:
    assert _claim(engine, probe, [1]) == {1}
    assert _claim(engine, probe, list(range(2, 40))) == set(range(2, 40))
    assert _claim(engine, probe, []) == set()
