"""One conditional UPDATE for many rows, each with its own values, as fast as each database allows.

The dispatcher changes a batch of attempts at once (``pending → dispatching`` with a token each,
``dispatching → sent`` with a deadline each), always from the state it read. SQLite runs an
``executemany`` in-process, row by row, quickly; on PostgreSQL a row-by-row statement costs a
round trip each, so there the batch is one ``UPDATE … FROM unnest(…)``: its values travel as one
array per column, so the statement's text is the same for every batch (compiled once, prepared by
the server) however many rows it holds.
Either way the caller learns exactly which rows were still in the expected state.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


def update_each(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]], *,
                only_if: sa.ColumnElement[bool],
                values: Mapping[str, Any], per_row: Mapping[str, sa.types.TypeEngine[Any]]) -> set[int] | None:
    """``UPDATE table SET values WHERE id = row.id AND only_if`` for every row.

    ``rows`` hold ``id`` and each key of ``per_row`` (name → type); in ``values``,
    ``row_value(name)`` stands for a row's own value. Returns the ids updated, or None when
    some rows were not updated and the database cannot say which (SQLite's ``executemany``
    gives a total only): the caller then reads the rows back. That is rare — a row taken by
    another writer meanwhile — so the common case costs one statement.
    """
    if not rows:
        return set()
    ids = [int(r["id"]) for r in rows]
    if conn.dialect.name == "postgresql":
        types: dict[str, sa.types.TypeEngine[Any]] = {"id": sa.Integer(), **per_row}
        v = (sa.func.unnest(*(sa.bindparam(f"a_{n}", type_=postgresql.ARRAY(t)) for n, t in types.items()))
             .table_valued(*(sa.column(n, t) for n, t in types.items())).render_derived(name="v"))
        own = {n: v.c[n] for n in per_row}
        stmt = (table.update().where(table.c.id == v.c.id, only_if)
                .values({k: _resolve(x, own) for k, x in values.items()}).returning(table.c.id))
        return set(conn.execute(stmt, {f"a_{n}": [r[n] for r in rows] for n in types}).scalars())
    own = {n: sa.bindparam(f"r_{n}", type_=t) for n, t in per_row.items()}
    stmt = (table.update().where(table.c.id == sa.bindparam("r_id"), only_if)
            .values({k: _resolve(x, own) for k, x in values.items()}))
    result = conn.execute(stmt, [{"r_id": r["id"], **{f"r_{n}": r[n] for n in per_row}} for r in rows])
    return set(ids) if result.rowcount == len(rows) else None


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
