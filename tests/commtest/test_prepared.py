"""Prepared statements (the acknowledgement writer's hot path) do what ``Connection.execute``
does: the same rows and values, the same row counts, the same exception classes."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.clock import FrozenClock
from commtest.models import Event, Ping
from commtest.prepared import Prepared
from scheduler.records import ACK_UPDATE, BY_TOKEN, insert_events, locked_answer_row, token_hash
from tests.web.conftest import sent_run, web_settings

PT = Ping.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]


def test_a_prepared_select_returns_what_execute_returns(engine: Engine, clock: FrozenClock) -> None:
    _, tokens = sent_run(engine, clock, web_settings(engine))
    stmt = sa.select(PT.c.id, PT.c.sent_at, PT.c.state, PT.c.acked_at).where(PT.c.token_hash == sa.bindparam("h"))
    prepared = Prepared(stmt)
    with engine.connect() as conn:
        for token in tokens.values():
            mine = prepared.run(conn, {"h": token_hash(token)}).first()
            theirs = conn.execute(stmt, {"h": token_hash(token)}).first()
            assert tuple(mine) == tuple(theirs) and mine.sent_at.tzinfo is not None and mine.acked_at is None
        assert prepared.run(conn, {"h": "none"}).first() is None


def test_the_locked_answer_row_is_the_same_as_the_core_statements(engine: Engine, clock: FrozenClock) -> None:
    _, tokens = sent_run(engine, clock, web_settings(engine))
    token = next(iter(tokens.values()))
    with engine.begin() as conn:
        prepared = locked_answer_row(conn, BY_TOKEN, {"token_hash": token_hash(token)})
        core = locked_answer_row(conn, PT.c.token_hash == token_hash(token))  # built per call: Connection.execute
        assert prepared is not None and core is not None
        for name in ("id", "run_id", "state", "sent_at", "deadline_at", "simulated", "address", "run_status"):
            assert getattr(prepared, name) == getattr(core, name)


def test_a_prepared_conditional_update_of_many_rows_counts_them_and_writes_each_its_own_values(
        engine: Engine, clock: FrozenClock) -> None:
    _, tokens = sent_run(engine, clock, web_settings(engine))
    at = datetime(2026, 4, 14, 8, 30, 15, 250000, tzinfo=timezone.utc)
    with engine.begin() as conn:
        first, second = (conn.execute(sa.select(PT.c.id).where(PT.c.token_hash == token_hash(t))).scalar()
                         for t in list(tokens.values())[:2])
        values = {"b_at": at, "p0": first, "m0": "link", "b0": "Officer Ünal <&>", "s0": False, "o0": "acked",
                  "x0": False, "p1": second, "m1": "email-reply", "b1": None, "s1": True, "o1": "acked_late", "x1": True}
        assert ACK_UPDATE(2).run(conn, values).rowcount == 2
        assert ACK_UPDATE(2).run(conn, values).rowcount == 0  # conditional: answered once
        rows = {r["id"]: r for r in conn.execute(sa.select(PT).where(PT.c.id.in_([first, second]))).mappings()}
    one, two = rows[first], rows[second]
    assert one["acked_at"] == at and one["settled_at"] == at and one["state"] == "acked"  # microseconds kept
    assert (one["ack_by"], one["ack_method"], one["ack_suspicious"], one["outcome"], one["simulated"]) == (
        "Officer Ünal <&>", "link", False, "acked", False)
    assert (two["ack_by"], two["ack_method"], two["ack_suspicious"], two["outcome"], two["simulated"]) == (
        None, "email-reply", True, "acked_late", True)
    assert ACK_UPDATE(2) is ACK_UPDATE(2) and ACK_UPDATE(1) is not ACK_UPDATE(2)  # compiled once per count


def test_prepared_inserts_write_what_core_inserts_write(engine: Engine, clock: FrozenClock) -> None:
    run_id, _ = sent_run(engine, clock, web_settings(engine))
    at = datetime(2026, 4, 14, 8, 30, tzinfo=timezone.utc)
    event = {"at": at, "actor": "web", "kind": "test.prepared", "run_id": run_id, "ping_id": None,
             "organisation_code": "XA-01", "channel": "email", "outcome": None, "response_ms": 1234,
             "data": {"note": "«quoted» \"text\"", "n": [1, 2], "none": None}}
    with engine.begin() as conn:
        insert_events(conn, [event, {**event, "kind": "test.prepared.2"}])
        conn.execute(ET.insert(), [{**event, "kind": "test.core"}])
        rows = conn.execute(sa.select(ET).where(ET.c.kind.like("test.%")).order_by(ET.c.id)).mappings().all()
    assert [r["kind"] for r in rows] == ["test.prepared", "test.prepared.2", "test.core"]
    mine, core = dict(rows[0]), dict(rows[2])
    for r in (mine, core):
        r.pop("id"), r.pop("kind")
    assert mine == core and mine["data"]["note"] == "«quoted» \"text\"" and mine["at"] == at


def test_a_driver_error_is_raised_as_sqlalchemys_own_class(engine: Engine, clock: FrozenClock) -> None:
    sent_run(engine, clock, web_settings(engine))
    event = {"at": datetime.now(timezone.utc), "actor": "web", "kind": "x", "run_id": 987654, "ping_id": None,
             "organisation_code": None, "channel": None, "outcome": None, "response_ms": None, "data": {}}
    with pytest.raises(sa.exc.IntegrityError):  # no such run: the foreign key refuses it
        with engine.begin() as conn:
            insert_events(conn, [event])


def test_an_in_list_given_per_call_is_refused(engine: Engine) -> None:
    stmt = sa.select(PT.c.id).where(PT.c.state.in_(sa.bindparam("states", expanding=True)))
    with engine.connect() as conn, pytest.raises(ValueError, match="IN list"):
        Prepared(stmt).run(conn, {"states": ["sent"]})


def test_a_moment_given_again_is_written_as_itself_and_a_new_one_as_the_new_one(engine: Engine,
                                                                                clock: FrozenClock) -> None:
    # A datetime's bind processor remembers its last value (a group's moment, given two dozen times).
    _, tokens = sent_run(engine, clock, web_settings(engine))
    with engine.connect() as conn:
        ids = [conn.execute(sa.select(PT.c.id).where(PT.c.token_hash == token_hash(t))).scalar()
               for t in list(tokens.values())[:2]]
    stmt = PT.update().where(PT.c.id == sa.bindparam("pid")).values(
        settled_at=sa.bindparam("at", type_=PT.c.settled_at.type))
    prepared = Prepared(stmt)
    first = datetime(2026, 4, 14, 8, 30, 15, 250000, tzinfo=timezone.utc)
    later = datetime(2026, 4, 14, 8, 30, 15, 250001, tzinfo=timezone.utc)  # one microsecond on
    with engine.begin() as conn:
        for pid, at in ((ids[0], first), (ids[0], first), (ids[1], later)):
            assert prepared.run(conn, {"pid": pid, "at": at}).rowcount == 1
        equal_not_same = datetime(2026, 4, 14, 8, 30, 15, 250001, tzinfo=timezone.utc)
        assert prepared.run(conn, {"pid": ids[0], "at": equal_not_same}).rowcount == 1
        read = dict(conn.execute(sa.select(PT.c.id, PT.c.settled_at).where(PT.c.id.in_(ids))).all())
    assert read == {ids[0]: later, ids[1]: later}


def test_remembered_columns_read_the_same_values_and_an_unknown_one_is_refused(engine: Engine,
                                                                               clock: FrozenClock) -> None:
    from commtest.models import Organisation

    OT = Organisation.__table__  # type: ignore[attr-defined]
    sent_run(engine, clock, web_settings(engine))
    stmt = sa.select(OT.c.code, OT.c.names, OT.c.languages).order_by(OT.c.code)
    with engine.connect() as conn:
        plain = Prepared(stmt).run(conn).rows
        remembered = Prepared(stmt, remember=("names", "languages"))
        assert remembered.run(conn).rows == plain and remembered.run(conn).rows == plain  # twice: from the memo
        assert [tuple(r) for r in plain] == [tuple(r) for r in conn.execute(stmt).all()]
        with pytest.raises(ValueError, match="no column"):
            Prepared(stmt, remember=("nicknames",)).run(conn)
