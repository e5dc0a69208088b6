"""Answers by link recorded a group at a time: gather, decide, apply.

The acknowledgement writer (``scheduler.ack_writer``) records every answer waiting in one
durable transaction. Recording them one by one took five statements each, and on a busy web
process every statement also waited for the interpreter's lock while the pages held it; a
group of eight took ~7 ms. Here the group is read in one statement (each ping locked, with
what its page needs: names, languages, zone, its run's state), each answer is decided by
``records.plan_ack`` on what was read (a second answer for a ping of the same group finds
the first), and the decisions are written with one statement of each kind
(``records.finish_acks``). The outcome of every answer is what recording it alone would have
been; ``tests/scheduler/test_ack_group.py`` holds the two side by side.
"""
from __future__ import annotations

from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy.engine import Engine

import sqlalchemy as sa

from commtest.clock import Clock
from commtest.db import run_write_connection
from commtest.models import ContactPoint, Organisation, Ping, RunStatus, TestRun
from commtest.prepared import PerCount
from commtest.settings import Settings
from scheduler import records
from scheduler.acks import ACTOR, PAGE_CHECKED_CHANNELS, AckOutcome, is_well_formed, outcome_of, token_info_of


class Answer(NamedTuple):
    """One answer by link. ``checked``: the page has made the checks its channel needs
    (``PAGE_CHECKED_CHANNELS``); when not, such a ping comes back as ``check``, unwritten.
    (A named tuple: it crosses to the writer process, pickled, by the thousand.)"""

    token: str
    method: str
    by: str | None
    user_agent: str | None
    source: str | None
    checked: bool = True


def acknowledge_token(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    token: str,
    *,
    method: str,
    by: str | None,
    user_agent: str | None,
    source: str | None,
) -> AckOutcome:
    """Record the answer behind ``token`` in one short durable transaction of its own (the web
    app groups them: scheduler.ack_writer). The caller has made its channel's checks."""
    if not is_well_formed(token):
        return AckOutcome("malformed")
    answer = Answer(token, method, by, user_agent, source)
    return run_write_connection(engine, lambda c: record_answers(c, clock, settings, [answer])[0], durable=True)


class GroupLostRace(RuntimeError):
    """A conditional update of the group did not apply although its row was locked: the writer
    records each answer of the group on its own instead."""


def record_answers(conn: sa.Connection, clock: Clock, settings: Settings, answers: list[Answer]) -> list[AckOutcome]:
    """Record ``answers`` in the caller's durable transaction (on its connection); their outcomes, in order."""
    now = clock.now()  # read inside the transaction: a retried one judges its own moment
    within = timedelta(seconds=settings.ack_suspicious_seconds)
    digests = [records.token_hash(a.token) if is_well_formed(a.token) else None for a in answers]
    rows = _locked_rows(conn, sorted({d for d in digests if d is not None}))
    outcomes: list[AckOutcome] = []
    plans: list[records.PlannedAck] = []
    recorded: dict[int, records.AckResult] = {}  # by ping: what this group recorded already
    for answer, digest in zip(answers, digests, strict=True):
        row = rows.get(digest) if digest is not None else None
        if row is None:
            outcomes.append(AckOutcome("malformed" if digest is None else "unknown"))
            continue
        info = token_info_of(row)
        if not answer.checked and row.channel in PAGE_CHECKED_CHANNELS:
            outcomes.append(AckOutcome("check", row.id, row.run_id, info=info))
            continue
        earlier = recorded.get(row.id)
        if earlier is not None:
            result = records.AckResult(row.id, row.run_id, "already", earlier.late, earlier.suspicious,
                                       earlier.response_ms, earlier.acked_at, earlier.run_status)
        elif row.acked_at is None and info.expired(now) and not info.run_closed:
            outcomes.append(outcome_of(None, info))
            continue
        else:
            by = (answer.by or "").strip() or None
            plan = records.plan_ack(row, now, method=answer.method, actor=ACTOR, by=by, user_agent=answer.user_agent,
                                    source=answer.source, suspicious_within=within)
            if plan is records.AFTER_CLOSE:
                result = records.after_close(conn, row, now, method=answer.method, actor=ACTOR, by=by,
                                             source=answer.source)
            elif isinstance(plan, records.PlannedAck):
                plans.append(plan)
                result = recorded[row.id] = plan.result
            else:
                result = plan  # type: ignore[assignment]
        outcomes.append(outcome_of(result, info))
    if plans:
        if records.apply_acks(conn, plans) != len(plans):
            raise GroupLostRace(f"{len(plans)} acknowledgements, not all applied")
        records.finish_acks(conn, plans)
    return outcomes


PT = Ping.__table__  # type: ignore[attr-defined]
_CP = ContactPoint.__table__  # type: ignore[attr-defined]
_ORG = Organisation.__table__  # type: ignore[attr-defined]
_RUN = TestRun.__table__  # type: ignore[attr-defined]
# What deciding an answer needs (records' columns) and what its page shows (token_info_of's).
_COLUMNS = (*records.ACK_COLUMNS, PT.c.token_hash, PT.c.language, PT.c.token_expires_at,
            _CP.c.timezone.label("cp_zone"), _CP.c.name.label("cp_name"), _CP.c.languages.label("cp_languages"),
            _ORG.c.code.label("org_code"), _ORG.c.name.label("org_name"), _ORG.c.timezone.label("org_zone"),
            _ORG.c.languages.label("org_languages"), _ORG.c.names.label("org_names"),
            _RUN.c.status.label("run_status"), _RUN.c.finished_at.label("run_finished_at"))


def _pings(n: int) -> sa.Select[Any]:
    """The group's read of ``n`` pings by token hash, with their pages' names and runs."""
    return (sa.select(*_COLUMNS).join(_CP, _CP.c.id == PT.c.contact_point_id)
            .join(_ORG, _ORG.c.id == _CP.c.organisation_id).join(_RUN, _RUN.c.id == PT.c.run_id)
            .where(PT.c.token_hash.in_([sa.bindparam(f"k{i}") for i in range(n)])))


# The directory's JSON values repeat from answer to answer: decoded once per stored value
# (token_info_of copies what it keeps).
_SHARED = ("cp_languages", "org_languages", "org_names")
_READ = PerCount(_pings, remember=_SHARED)
# PostgreSQL: the pings FOR UPDATE in id order, then their runs FOR SHARE.
_LOCK = PerCount(lambda n: _pings(n).order_by(PT.c.id).with_for_update(of=PT), remember=_SHARED)
_RUNS = PerCount(lambda n: sa.select(_RUN.c.id, _RUN.c.status).where(_RUN.c.id.in_(
    [sa.bindparam(f"k{i}") for i in range(n)])).order_by(_RUN.c.id).with_for_update(read=True))


def _locked_rows(conn: sa.Connection, digests: list[str]) -> dict[str, Any]:
    """The pings of ``digests`` by token hash, locked as ``records.locked_answer_row`` locks one:
    on SQLite the write transaction holds the database; on PostgreSQL each ping FOR UPDATE (in
    id order: two writers never wait on each other in a circle), then their runs FOR SHARE
    (a run cannot close while an answer for it is recorded), the lock order of records."""
    if not digests:
        return {}
    params = {f"k{i}": d for i, d in enumerate(digests)}
    if conn.dialect.name == "sqlite":
        return {r.token_hash: r for r in _READ(len(digests)).run(conn, params).rows}
    rows = _LOCK(len(digests)).run(conn, params).rows
    runs = sorted({r.run_id for r in rows})
    status = dict(_RUNS(len(runs)).run(conn, {f"k{i}": r for i, r in enumerate(runs)}).rows) if runs else {}
    # A run gone meanwhile is closed for good (as locked_answer_row judges it).
    return {r.token_hash: r._replace(run_status=status.get(r.run_id) or RunStatus.completed.value)
            for r in rows}
