"""Core statements run on the driver's cursor: the acknowledgement writer's hot path.

Recording one acknowledgement is five short statements (find and lock the ping, the
conditional update, cancel the step's pending attempts, verify the endpoint, the events). Through
``Connection.execute`` each cost 60-100 µs of SQLAlchemy bookkeeping (execution context,
parameter processing, result objects) against 10-15 µs of database work, so the writer spent
four fifths of an answer outside the database. A ``Prepared`` statement is compiled by
SQLAlchemy once per dialect (its SQL, its parameter order, its types' bind and result
processors) and then runs on the DBAPI cursor of the caller's connection, inside the caller's
transaction: the same SQL, the same values in and out, a driver error raised as SQLAlchemy's
own exception class (so ``run_write`` retries a lost race as before).

What it does not do: bind parameters the caller gives to an ``IN`` (expanding) list, and
anything ``Connection.execute`` adds through events (commtest registers none on execution).
``tests/commtest/test_prepared.py`` holds each prepared statement of the writer to what
``Connection.execute`` does, on SQLite and PostgreSQL.
"""
from __future__ import annotations

import functools
import threading
from collections import namedtuple
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa


@dataclass(frozen=True)
class _Plan:
    sql: str
    positional: bool  # the driver takes a list in ``slots``' order (qmark, format), not a dict by ``names``
    names: tuple[str, ...]
    # Each parameter in the statement's order: (key, its bind processor or None) for a value the
    # caller gives, or (None, value) for the statement's own (literals, IN lists), processed once.
    slots: tuple[tuple[str | None, Any], ...]
    row: Any  # namedtuple of the result columns, or None
    # (index, result processor) of each result column that has one (most are integers and text).
    results: tuple[tuple[int, Callable[[Any], Any]], ...]


class Result:
    """What a prepared statement returned: ``rowcount`` and its rows (named tuples)."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rowcount: int, rows: list[Any]) -> None:
        self.rowcount, self.rows = rowcount, rows

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def all(self) -> list[Any]:
        return self.rows

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


# Decoded values remembered per result column named in ``remember`` (by stored value).
MEMO_PER_COLUMN = 2048


def _last_of(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A datetime's bind processor remembering its last value: the writer stamps a whole group
    (its update and its two dozen events) with one moment, which was formatted once per value
    (4 % of the writer's time in a profile). Datetimes are immutable; the pair is swapped as one."""
    last: list[tuple[Any, Any]] = [(object(), None)]

    def remembered(value: Any) -> Any:
        seen, out = last[0]
        if value is not seen:
            out = process(value)
            last[0] = (value, out)
        return out

    return remembered


def _is_datetime(type_: Any) -> bool:
    return isinstance(type_, sa.DateTime) or isinstance(getattr(type_, "impl", None), sa.DateTime)


class Prepared:
    """``stmt``, compiled for a dialect on its first use with that dialect and the keys given.
    ``remember``: result columns whose processed values are remembered by stored value (JSON
    columns that repeat from row to row, such as an organisation's names): what they return is
    shared between rows and must be treated as read-only."""

    def __init__(self, stmt: sa.Executable, remember: tuple[str, ...] = ()) -> None:
        self.stmt = stmt
        self.remember = frozenset(remember)
        self._plans: dict[tuple[str, frozenset[str]], _Plan] = {}
        self._lock = threading.Lock()

    def _plan(self, dialect: sa.Dialect, keys: frozenset[str]) -> _Plan:
        plan = self._plans.get((dialect.name, keys))
        if plan is None:
            with self._lock:
                plan = self._plans.get((dialect.name, keys)) or self._compile(dialect, keys)
                self._plans[(dialect.name, keys)] = plan
        return plan

    def _compile(self, dialect: sa.Dialect, keys: frozenset[str]) -> _Plan:
        # An INSERT without values of its own takes its columns from the keys given.
        own_values = isinstance(self.stmt, sa.Insert) and bool(self.stmt._values or self.stmt._multi_values)  # noqa: SLF001
        compiled = self.stmt.compile(dialect=dialect, column_keys=sorted(keys) if isinstance(self.stmt, sa.Insert)
                                     and not own_values else None)
        given = {k: None for k in keys}
        params = compiled.construct_params(given, _check=False)
        expanding = {b.key for b in compiled.post_compile_params} | {b.key for b in compiled.literal_execute_params}
        if expanding & keys:
            raise ValueError(f"Prepared cannot bind {sorted(expanding & keys)}: an IN list given per call")
        if expanding:  # the statement's own IN lists: expanded once, they never change
            state = compiled._process_parameters_for_postcompile(params)  # noqa: SLF001
            sql, order, processors, params = state.statement, state.positiontup, state.processors, state.parameters
        else:
            sql, order, processors = compiled.string, compiled.positiontup, compiled._bind_processors  # noqa: SLF001
        positional = dialect.positional and order is not None
        names = tuple(order) if positional else tuple(params)

        def slot(key: str) -> tuple[str | None, Any]:
            process = processors.get(key)
            if key in keys:
                bind = compiled.binds.get(key)
                if process is not None and bind is not None and _is_datetime(bind.type):
                    process = _last_of(process)
                return key, process
            value = params[key]
            return None, process(value) if process is not None else value

        columns = compiled._result_columns  # noqa: SLF001 - (key, name, objects, type) of each column returned
        row = namedtuple("Row", [c[0] for c in columns]) if columns else None  # type: ignore[misc]
        per_column = [c[3]._cached_result_processor(dialect, None) for c in columns]  # noqa: SLF001
        if self.remember - {c[0] for c in columns}:
            raise ValueError(f"Prepared: no column {sorted(self.remember - {c[0] for c in columns})} to remember")
        per_column = [functools.lru_cache(maxsize=MEMO_PER_COLUMN)(p) if p is not None and c[0] in self.remember
                      else p for c, p in zip(columns, per_column, strict=True)]
        results = tuple((i, p) for i, p in enumerate(per_column) if p is not None)
        return _Plan(sql, positional, names, tuple(slot(k) for k in names), row, results)

    def _values(self, plan: _Plan, given: dict[str, Any]) -> Any:
        # One pass in the statement's order: the writer's statements carry hundreds of values.
        values = [(given[k] if p is None else p(given[k])) if k is not None else p for k, p in plan.slots]
        return values if plan.positional else dict(zip(plan.names, values, strict=True))

    def run(self, conn: sa.Connection, params: dict[str, Any] | None = None) -> Result:
        """Run once on ``conn``'s transaction."""
        params = params or {}
        plan = self._plan(conn.dialect, frozenset(params))
        values = self._values(plan, params)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(plan.sql, values)
            rows = cursor.fetchall() if plan.row is not None else []
            rowcount = cursor.rowcount
        except conn.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(plan.sql, values, exc, conn.dialect.loaded_dbapi.Error,
                                             dialect=conn.dialect) from exc
        finally:
            cursor.close()
        if plan.row is not None:
            rows = [self._row(plan, r) for r in rows]
        return Result(rowcount, rows)

    @staticmethod
    def _row(plan: _Plan, raw: Any) -> Any:
        values = list(raw)
        for i, process in plan.results:
            values[i] = process(values[i])
        return plan.row._make(values)


class PerCount:
    """A statement over ``n`` rows (``n`` sets of bind parameters: an ``IN`` list, one ``CASE``
    branch or one ``VALUES`` row per row), built by ``build(n)`` and compiled once per ``n``.
    One statement for a whole group costs the database one step, where ``executemany`` takes one
    per row and gives the interpreter's lock away at each."""

    def __init__(self, build: Callable[[int], sa.Executable], remember: tuple[str, ...] = ()) -> None:
        self.build, self.remember = build, remember
        self._by_count: dict[int, Prepared] = {}
        self._lock = threading.Lock()

    def __call__(self, n: int) -> Prepared:
        prepared = self._by_count.get(n)
        if prepared is None:
            with self._lock:
                prepared = self._by_count.get(n) or Prepared(self.build(n), self.remember)
                self._by_count[n] = prepared
        return prepared
