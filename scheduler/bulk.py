"""Many rows in one statement, each with its own values, as fast as each database allows.

The dispatcher changes a batch of attempts at once (``pending → dispatching`` with a token each,
``dispatching → sent`` with a deadline each), always from the state it read, and logs an event
for each. SQLite runs an ``executemany`` in-process, row by row, quickly. On PostgreSQL a
row-by-row statement costs a round trip or a pipeline message each, and a multi-row ``VALUES``
list a parameter per value (its text differs with the number of rows, so neither psycopg, which
parses a statement of more than 50 parameters anew each time, nor the server can reuse it). So
there the rows travel as **one JSON document**, read by ``json_to_recordset``: one parameter,
encoded by the C ``json`` module, the same statement text for every batch. (Arrays per column,
``unnest``, were tried first: psycopg builds array literals in Python, escaping every quote of
every JSON value with a regular expression; that cost more than the database's own work.)
Either way the caller learns exactly which rows were still in the expected state.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from commtest.clock import ensure_utc


def update_each(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *,
                only_if: sa.ColumnElement[bool],
                values: Mapping[str, Any], per_row: Mapping[str, sa.types.TypeEngine[Any]],
                key: str | None = None, params: Mapping[str, Any] | None = None,
                log: tuple[sa.Table, Sequence[Mapping[str, Any]]] | None = None) -> set[int] | None:
    """``UPDATE table SET values WHERE id = row.id AND only_if`` for every row.

    ``rows`` hold ``id`` and each key of ``per_row`` (name → type); in ``values``,
    ``row_value(name)`` stands for a row's own value. Returns the ids updated, or None when
    some rows were not updated and the database cannot say which (SQLite's ``executemany``
    gives a total only): the caller then reads the rows back. That is rare — a row taken by
    another writer meanwhile — so the common case costs one statement.

    With ``key``, the statement is built once (per database) and kept under that name: a caller
    on a hot path passes the same ``only_if`` and ``values`` every time, with what changes from
    call to call (the instant) as ``sa.bindparam`` whose values are in ``params``. (Building an
    UPDATE and its cache key costs SQLAlchemy about 0.2-0.4 ms, twice per batch of 64.)

    With ``log`` = (a table, a row for each of ``rows``, all with the same keys), the log rows of
    the rows updated are inserted too, in the order of ``rows`` (an event log's order): on
    PostgreSQL in the same statement, a data-modifying CTE (one round trip and one statement
    less per batch; the database's own work is the same). When the result is None nothing was
    logged: the caller, who then reads back which rows it updated, logs them.
    """
    if not rows:
        return set()
    ids = [int(r["id"]) for r in rows]
    logged = tuple(log[1][0]) if log and log[1] else ()
    pg = conn.dialect.name == "postgresql"
    cache = (key, conn.dialect.name, log[0].name if log and pg else "", logged if pg else ())
    stmt = _UPDATES.get(cache) if key else None
    if stmt is None:
        stmt = _update_statement(conn.dialect, table, only_if, values, per_row,
                                 (log[0], logged) if log and logged else None)
        if key:
            _UPDATES[cache] = stmt
    if pg:
        doc_rows: Sequence[Mapping[str, Any]] = rows
        if log and logged:
            doc_rows = [{**r, **{_LOGGED + n: e[n] for n in logged}} for r, e in zip(rows, log[1], strict=True)]
        given = {**(params or {}), "rows": _document(doc_rows, ("id", *per_row, *(_LOGGED + n for n in logged))),
                 "b_ids": ids}
        return set(conn.execute(stmt, given).scalars().all())  # fetched at once, not row by row
    result = conn.execute(stmt, [{**(params or {}), "r_id": r["id"], **{f"r_{n}": r[n] for n in per_row}}
                                 for r in rows])
    if result.rowcount != len(rows):
        return None
    if log:
        insert_rows(conn, log[0], log[1])
    return set(ids)


_UPDATES: dict[tuple[str | None, str, str, tuple[str, ...]], sa.Executable] = {}
# The log's columns in the document, apart from the updated rows' own.
_LOGGED = "l_"


def _update_statement(dialect: sa.Dialect, table: sa.Table, only_if: sa.ColumnElement[bool],
                      values: Mapping[str, Any], per_row: Mapping[str, sa.types.TypeEngine[Any]],
                      log: tuple[sa.Table, tuple[str, ...]] | None = None) -> sa.Executable:
    if dialect.name == "postgresql":
        logged = {_LOGGED + n: log[0].c[n].type for n in log[1]} if log else {}
        rs = _recordset({"id": sa.Integer(), **per_row, **logged})
        # The document is read once, into a MATERIALIZED CTE: joined as a function instead,
        # PostgreSQL parsed it again for each row it updated (64 parses of 64 rows a batch).
        v = sa.select(*rs.c).cte("v").prefix_with("MATERIALIZED")
        own = {n: v.c[n] for n in per_row}
        # The rows are found by their ids (``= ANY``: one probe of the primary key each), and
        # ``only_if`` is checked on them as written, inside ``coalesce``: opaque to the planner,
        # which then neither answers it with an index (``state = 'pending'`` would read every
        # pending attempt of the run, thousands, for each batch of 64) nor estimates it from the
        # column's statistics. (Written ``IS TRUE``, it was: ``state = 'dispatching'``, rare when
        # the table was analysed, put one row on that side, and the planner joined the batch's
        # 64 rows to the document in a nested loop, 64 x 64 rows, 2-3 ms a batch.)
        ids = sa.bindparam("b_ids", type_=postgresql.ARRAY(sa.Integer()))
        update = (table.update().add_cte(v)
                  .where(table.c.id == v.c.id, table.c.id == sa.any_(ids), sa.func.coalesce(only_if, sa.false()))
                  .values({k: _resolve(x, own) for k, x in values.items()}).returning(table.c.id))
        if log is None:
            return update
        # WITH v AS MATERIALIZED (…), u AS (UPDATE … RETURNING id), l AS (INSERT INTO log SELECT …
        # FROM v JOIN u) SELECT id FROM u: the log rows of the rows updated, in the document's
        # order, and the ids updated.
        u = update.cte("u")
        target, names = log
        chosen = sa.select(*(v.c[_LOGGED + n] for n in names)).select_from(v.join(u, u.c.id == v.c.id))
        logged_rows = target.insert().from_select([target.c[n] for n in names], chosen.order_by(v.c[_ORDER])).cte("l")
        return sa.select(u.c.id).add_cte(v, u, logged_rows)
    own = {n: sa.bindparam(f"r_{n}", type_=t) for n, t in per_row.items()}
    return (table.update().where(table.c.id == sa.bindparam("r_id"), only_if)
            .values({k: _resolve(x, own) for k, x in values.items()}))


_INSERTS: dict[tuple[str, tuple[str, ...], bool], Any] = {}


def insert_rows(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """``INSERT`` every row of ``rows`` (all with the same keys), in their order: their ids (an
    event log's order) follow the list."""
    _insert(conn, table, rows, returning=False)


def insert_rows_returning_ids(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """``insert_rows``, and the new rows' ids, in the order of ``rows``."""
    return _insert(conn, table, rows, returning=True)


def _insert(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *, returning: bool) -> list[int]:
    if not rows:
        return []
    if conn.dialect.name != "postgresql":
        if returning:
            return list(conn.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True),
                                     list(rows)).scalars())
        conn.execute(table.insert(), list(rows))
        return []
    names = tuple(rows[0])
    stmt = _INSERTS.get((table.name, names, returning))
    if stmt is None:
        v = _recordset({n: table.c[n].type for n in names})
        stmt = table.insert().from_select([table.c[n] for n in names],
                                          sa.select(*(v.c[n] for n in names)).order_by(v.c[_ORDER]))
        if returning:
            stmt = stmt.returning(table.c.id)
        _INSERTS[(table.name, names, returning)] = stmt
    result = conn.execute(stmt, {"rows": _document(rows, names)})
    # The ids come from the table's sequence as the rows are inserted, in the document's order
    # (ORDER BY above): sorted, the i-th is the i-th row's (how SQLAlchemy orders RETURNING too).
    return sorted(result.scalars().all()) if returning else []


def among(column: sa.ColumnElement[Any], ids: Sequence[int], dialect: sa.Dialect) -> sa.ColumnElement[bool]:
    """``column IN ids``. On PostgreSQL as ``= ANY(:array)``: one parameter, so the statement's text
    is the same however many ids."""
    if dialect.name == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(ids), type_=postgresql.ARRAY(sa.Integer())))
    return column.in_(list(ids))


class RowValue:
    """A placeholder for one row's own value of ``name`` inside ``values``."""

    def __init__(self, name: str, wrap: Any = None) -> None:
        self.name, self.wrap = name, wrap


def row_value(name: str, wrap: Any = None) -> Any:
    """This row's value of ``name``; ``wrap(expr)`` builds an expression around it."""
    return RowValue(name, wrap)


def _resolve(x: Any, own: Mapping[str, Any]) -> Any:
    if isinstance(x, RowValue):
        expr = own[x.name]
        return x.wrap(expr) if x.wrap is not None else expr
    return x


# Each row's position in the document: the rows are inserted in that order.
_ORDER = "_n"


def _recordset(types: Mapping[str, sa.types.TypeEngine[Any]]) -> Any:
    """``json_to_recordset(:rows) AS v(name type, …)``: the rows of the document ``rows``."""
    doc = sa.cast(sa.bindparam("rows", type_=sa.Text()), postgresql.JSON())
    return (sa.func.json_to_recordset(doc)
            .table_valued(*(sa.column(n, t) for n, t in {**types, _ORDER: sa.Integer()}.items()))
            .render_derived(name="v", with_types=True))


def _document(rows: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    # A batch's rows share most of their instants (the batch's own, a deadline per step): each
    # distinct one is written out once.
    written: dict[datetime, str] = {}

    def instant(value: Any) -> str:
        text = written.get(value) if isinstance(value, datetime) and value.tzinfo is not None else None
        if text is None:
            text = written[value] = _instant(value)
        return text

    return json.dumps([{**{n: r[n] for n in names}, _ORDER: i} for i, r in enumerate(rows)], default=instant)


def _instant(value: Any) -> str:
    """Instants as ISO 8601 in UTC (what ``UTCDateTime`` stores); anything else is refused."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use aware UTC")
        return ensure_utc(value).isoformat()
    raise TypeError(f"{type(value).__name__} cannot be written in a batch")
