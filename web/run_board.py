"""The live run board: organisations × channels, one cell per verdict, each listing its
checks with what is happening now (planned, sent, delivered, answered, failed) and the
time elapsed against the deadline.

Built from one read-only snapshot (``commtest.db.read_session``): the run's checks and
verdicts as the event log gives them (``commtest.facts.facts_of_run``) and the open
attempts' times from the pings table. Never the write lock, so polling it every second from
several browsers costs the run nothing.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from commtest.db import read_session
from commtest.errors import NotFoundError
from commtest.facts import Check, facts_of_run
from commtest.i18n import N_, Texts
from commtest.models import Organisation, Ping, RunStatus, TestRun
from commtest.vocabulary import name_of
from scheduler.specs import spec_for_revision
from web.planned_tests import may_show_moment

PHASES = {"pending": N_("planned"), "dispatching": N_("sending"), "sent": N_("sent"), "delivered": N_("delivered")}
OPEN = ("pending", "dispatching", "sent", "delivered")


@dataclass(frozen=True)
class BoardCheck:
    contact_point: str
    status: str  # pass | fail | pending | not_tested | cancelled | aborted
    phase: str  # for a pending check: pending | dispatching | sent | delivered
    text: str  # what happened or is happening, in words
    attempts: str  # "1/2": sent of planned
    response: str  # the response time, when answered
    elapsed: str  # since first contact, while waiting
    deadline: str  # the open attempt's deadline (local time)
    remaining: str  # time left before that deadline, or "" once passed
    overdue: bool
    simulated: bool


@dataclass(frozen=True)
class BoardCell:
    organisation: str
    channel: str
    verdict: str
    verdict_text: str
    checks: list[BoardCheck] = field(default_factory=list)
    simulated: bool = False


@dataclass(frozen=True)
class Board:
    run_id: int
    playbook_id: str
    title: str
    status: str
    status_text: str
    closed: bool
    fire_at: str
    started_at: str
    finished_at: str
    organisations: list[tuple[str, str]]
    channels: list[tuple[str, str]]
    cells: dict[tuple[str, str], BoardCell]
    counts: dict[str, int]
    simulated: bool
    open_pings: list[tuple[int, str]]  # (ping id, label) that a manual outcome may answer

    def version(self) -> str:
        """Changes whenever something a person would see changes (what the live stream compares)."""
        text = repr((self.status, sorted(self.cells.items()), self.counts))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _check_line(c: Check, pings: list[Ping], now: datetime, t: Texts) -> BoardCheck:
    open_ = [p for p in pings if p.state in OPEN]
    phase = max((p.state for p in open_), key=OPEN.index, default="") if open_ else ""
    waiting = next((p for p in sorted(open_, key=lambda p: p.attempt, reverse=True) if p.deadline_at), None)
    elapsed = remaining = deadline = ""
    overdue = False
    if c.status == "pending" and c.first_contact_at is not None:
        elapsed = t.duration((now - c.first_contact_at).total_seconds() * 1000)
    if c.status == "pending" and waiting is not None and waiting.deadline_at is not None:
        deadline = t.clock(waiting.deadline_at, seconds=False)
        left = (waiting.deadline_at - now).total_seconds()
        overdue = left < 0
        remaining = t.duration(left * 1000) if left >= 0 else ""
    if c.status == "pending":
        text = t(PHASES.get(phase, "planned"))
    elif c.answered:
        by = f" ({name_of('method', c.method, t)})" if c.method else ""
        text = name_of("outcome", c.outcome, t) + by
    else:
        text = name_of("outcome", c.outcome, t) if c.outcome else name_of("verdict", c.status, t)
    return BoardCheck(c.contact_point_code, c.status, phase, text, f"{c.attempts_sent}/{c.attempts_planned}",
                      t.duration(c.response_ms) if c.response_ms is not None else "", elapsed, deadline, remaining,
                      overdue, c.simulated)


def build_board(engine: Engine, run_id: int, t: Texts, now: datetime) -> Board:
    with read_session(engine) as s:
        run = s.get(TestRun, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} does not exist")
        spec = spec_for_revision(s, run.revision_id)
        facts = facts_of_run(s.connection(), run_id, spec.fact_rules())
        pings = s.exec(select(Ping).where(Ping.run_id == run_id).order_by(col(Ping.id))).all()
        names = dict(s.exec(select(Organisation.code, Organisation.name)).all())
        cp_codes = {c.contact_point_id: c.contact_point_code for c in facts.checks}
    by_check: dict[tuple[int, str], list[Ping]] = {}
    for p in pings:
        by_check.setdefault((p.contact_point_id, p.channel), []).append(p)
    orgs = list(dict.fromkeys([*spec.fact_rules().participants, *(v.organisation_code for v in facts.verdicts)]))
    chans = list(dict.fromkeys([*spec.channels(), *(v.channel for v in facts.verdicts)]))
    cells: dict[tuple[str, str], BoardCell] = {}
    for v in facts.verdicts:
        checks = [_check_line(c, by_check.get((c.contact_point_id, c.channel), []), now, t) for c in facts.checks
                  if c.organisation_code == v.organisation_code and c.channel == v.channel]
        cells[(v.organisation_code, v.channel)] = BoardCell(v.organisation_code, v.channel, v.verdict,
                                                           name_of("verdict", v.verdict, t), checks, v.simulated)
    counts: dict[str, int] = {}
    for cell in cells.values():
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    closed = run.status not in (RunStatus.running.value, RunStatus.planned.value)
    answerable = [] if closed else [
        (p.id or 0, f"{p.organisation_code} · {cp_codes.get(p.contact_point_id, p.contact_point_id)} · "
                    f"{name_of('channel', p.channel, t)} · {t('attempt %(n)s', n=p.attempt)}")
        for p in pings if p.state in ("sent", "delivered", "expired", "failed", "unknown") and p.acked_at is None]
    return Board(
        run.id or 0, run.playbook_id, spec.title_in(t.language), run.status, name_of("run_status", run.status, t),
        closed, t.when(run.fire_at) if may_show_moment(run) else "–", t.when(run.started_at), t.when(run.finished_at),
        [(o, names.get(o, o)) for o in orgs], [(c, name_of("channel", c, t)) for c in chans], cells, counts,
        any(c.simulated for c in facts.checks) or any(p.simulated for p in pings), answerable,
    )


def run_rows(engine: Engine, t: Texts, *, limit: int, offset: int = 0) -> tuple[list[dict[str, object]], int]:
    """The runs, newest first, each with its verdict counts (stored for closed runs, derived for open ones)."""
    from commtest.facts import stored_facts

    with read_session(engine) as s:
        total = int(s.exec(select(sa.func.count()).select_from(TestRun)).one())
        runs = s.exec(select(TestRun).order_by(col(TestRun.id).desc()).limit(limit).offset(offset)).all()
        out = []
        for run in runs:
            if run.status in (RunStatus.running.value, RunStatus.planned.value):
                facts = facts_of_run(s.connection(), run.id or 0, spec_for_revision(s, run.revision_id).fact_rules())
            else:
                facts = stored_facts(s.connection(), run.id or 0)
            counts: dict[str, int] = {}
            for v in facts.verdicts:
                counts[v.verdict] = counts.get(v.verdict, 0) + 1
            out.append({
                "id": run.id, "playbook_id": run.playbook_id, "status": run.status,
                "status_text": name_of("run_status", run.status, t), "trigger": name_of("trigger", run.trigger, t),
                "when": (t.when(run.started_at or run.fire_at) if may_show_moment(run)
                         else t("unannounced: the moment is not shown")),
                "started_by": run.started_by, "counts": counts,
                "summary": ", ".join(f"{n} {name_of('verdict', k, t)}" for k, n in sorted(counts.items())),
                "simulated": any(c.simulated for c in facts.checks),
            })
    return out, total
