"""scheduler.bulk: many rows in one statement (a conditional UPDATE, an INSERT), each with its own values."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.models import UTCDateTime
from scheduler.bulk import among, insert_rows, insert_rows_returning_ids, row_value, update_each

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


@pytest.fixture
def log_table(engine: Engine) -> Iterator[sa.Table]:
    table = sa.Table("bulk_log", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                     sa.Column("at", UTCDateTime(timezone=True), nullable=False), sa.Column("kind", sa.String(40)),
                     sa.Column("n", sa.Integer), sa.Column("flag", sa.Boolean), sa.Column("data", sa.JSON, nullable=False))
    table.create(engine)
    yield table
    table.drop(engine)


# What a batch of event rows may hold: quotes, backslashes, new lines, non-Latin text, nulls,
# nested values. Each must come back exactly as a plain INSERT would have stored it.
_AWKWARD = ['say "yes"', "C:\\temp\\x", "line\nbreak", "Lëtzebuergesch — 東京", "", "{\"a\": 1}", "'; DROP TABLE x; --"]


def _rows(n: int) -> list[dict[str, object]]:
    return [{"at": T0 + timedelta(microseconds=i), "kind": _AWKWARD[i % len(_AWKWARD)] if i % 5 else None,
             "n": i if i % 3 else None, "flag": bool(i % 2),
             "data": {"text": _AWKWARD[i % len(_AWKWARD)], "list": [i, None, True], "nested": {"k": "v"}}}
            for i in range(n)]


def test_inserted_rows_come_back_exactly_as_given_in_the_order_given(engine: Engine, log_table: sa.Table) -> None:
    rows = _rows(70)
    with engine.begin() as c:
        insert_rows(c, log_table, rows)
    with engine.connect() as c:
        back = [r._asdict() for r in c.execute(sa.select(log_table).order_by(log_table.c.id))]
    # ids follow the list: an event log keeps the order things happened in
    assert [{k: v for k, v in r.items() if k != "id"} for r in back] == rows
    assert [r["id"] for r in back] == sorted(r["id"] for r in back)


def test_a_batch_insert_stores_what_a_plain_insert_stores(engine: Engine, log_table: sa.Table) -> None:
    rows = _rows(10)
    with engine.begin() as c:
        insert_rows(c, log_table, rows)
        c.execute(log_table.insert(), rows)
        got = [r._asdict() for r in c.execute(sa.select(log_table).order_by(log_table.c.id))]
    assert [{k: v for k, v in r.items() if k != "id"} for r in got[:10]] == \
        [{k: v for k, v in r.items() if k != "id"} for r in got[10:]]


def test_the_ids_returned_belong_to_the_rows_given_in_their_order(engine: Engine, log_table: sa.Table) -> None:
    with engine.begin() as c:
        insert_rows(c, log_table, _rows(3))  # the ids do not start at 1
        rows = _rows(70)
        ids = insert_rows_returning_ids(c, log_table, rows)
        stored = {r.id: r.at for r in c.execute(sa.select(log_table.c.id, log_table.c.at))}
        assert insert_rows_returning_ids(c, log_table, []) == []
    assert len(ids) == len(set(ids)) == 70
    assert [stored[i] for i in ids] == [r["at"] for r in rows]  # each id is its own row's (the instants differ)


def test_batches_of_one_row_or_none_are_inserted_alike(engine: Engine, log_table: sa.Table) -> None:
    with engine.begin() as c:
        insert_rows(c, log_table, [])
        insert_rows(c, log_table, _rows(1))
        assert c.execute(sa.select(sa.func.count()).select_from(log_table)).scalar() == 1


def test_a_naive_instant_is_refused_and_nothing_is_written(engine: Engine, log_table: sa.Table) -> None:
    rows = _rows(3)
    rows[2]["at"] = datetime(2026, 12, 7, 9, 0)  # no time zone
    with pytest.raises((ValueError, sa.exc.StatementError)):
        with engine.begin() as c:
            insert_rows(c, log_table, rows)
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(log_table)).scalar() == 0


def test_among_selects_the_rows_named_however_many(engine: Engine, probe: sa.Table) -> None:
    with engine.connect() as c:
        for ids in ([5], list(range(1, 65)), [3, 99, 1000]):
            got = set(c.execute(sa.select(probe.c.id).where(among(probe.c.id, ids, c.dialect))).scalars())
            assert got == {i for i in ids if i <= 100}


def test_a_kept_statement_takes_each_call_s_own_instant_and_rows(engine: Engine, probe: sa.Table) -> None:
    now = sa.bindparam("b_now", type_=probe.c.at.type)
    for start, instant in ((1, T0), (11, T0 + timedelta(hours=1))):
        with engine.begin() as c:
            done = update_each(c, probe, [{"id": i, "tag": f"t{i}"} for i in range(start, start + 5)],
                               only_if=probe.c.state == "pending",
                               values={"state": "dispatching", "tag": row_value("tag"), "at": now},
                               per_row={"tag": probe.c.tag.type}, key="test.kept", params={"b_now": instant})
        assert done == set(range(start, start + 5))
    with engine.connect() as c:
        rows = {r.id: r for r in c.execute(sa.select(probe))}
    assert rows[3].at == T0 and rows[3].tag == "t3"
    assert rows[13].at == T0 + timedelta(hours=1) and rows[13].tag == "t13"
    assert rows[6].state == "pending" and rows[6].at is None


def _claim_logged(engine: Engine, probe: sa.Table, log_table: sa.Table, ids: list[int]) -> set[int] | None:
    with engine.begin() as c:
        return update_each(
            c, probe, [{"id": i, "tag": f"token-{i}"} for i in ids], only_if=probe.c.state == "pending",
            values={"state": "dispatching", "tag": row_value("tag")}, per_row={"tag": probe.c.tag.type},
            key="test.logged",
            log=(log_table, [{"at": T0 + timedelta(seconds=i), "kind": "claimed", "n": i, "flag": i % 2 == 0,
                              "data": {"id": i, "text": _AWKWARD[i % len(_AWKWARD)]}} for i in ids]))


def _log(engine: Engine, log_table: sa.Table) -> list[dict[str, object]]:
    with engine.connect() as c:
        return [r._asdict() for r in c.execute(sa.select(log_table).order_by(log_table.c.id))]


def test_an_update_with_its_log_logs_each_row_it_updated_in_the_order_given(
        engine: Engine, probe: sa.Table, log_table: sa.Table) -> None:
    order = [9, 2, 40, 7, 33, 1]  # not the ids' order: the log follows the list
    assert _claim_logged(engine, probe, log_table, order) == set(order)
    log = _log(engine, log_table)
    assert [r["n"] for r in log] == order
    assert log[1] == {"id": log[1]["id"], "at": T0 + timedelta(seconds=2), "kind": "claimed", "n": 2, "flag": True,
                      "data": {"id": 2, "text": _AWKWARD[2]}}
    with engine.connect() as c:
        assert c.execute(sa.select(probe.c.tag).where(probe.c.id == 40)).scalar() == "token-40"


def test_an_update_with_its_log_logs_nothing_for_rows_it_left_alone(
        engine: Engine, probe: sa.Table, log_table: sa.Table) -> None:
    with engine.begin() as c:  # another writer took two of them first
        c.execute(probe.update().where(probe.c.id.in_([3, 5])).values(state="cancelled"))
    done = _claim_logged(engine, probe, log_table, [1, 2, 3, 4, 5])
    logged = [r["n"] for r in _log(engine, log_table)]
    if done is None:  # SQLite cannot say which: nothing is logged, the caller reads them back and logs them
        assert logged == []
    else:
        assert done == {1, 2, 4} and logged == [1, 2, 4]


def test_an_update_that_fails_logs_nothing(engine: Engine, probe: sa.Table, log_table: sa.Table) -> None:
    with pytest.raises((ValueError, sa.exc.StatementError)):
        with engine.begin() as c:
            update_each(c, probe, [{"id": 1, "tag": "t"}], only_if=probe.c.state == "pending",
                        values={"tag": row_value("tag")}, per_row={"tag": probe.c.tag.type},
                        log=(log_table, [{"at": datetime(2026, 12, 7, 9, 0), "kind": "x", "n": 1, "flag": True,
                                          "data": {}}]))  # a naive instant
    assert _log(engine, log_table) == []
    with engine.connect() as c:
        assert c.execute(sa.select(probe.c.tag).where(probe.c.id == 1)).scalar() is None
