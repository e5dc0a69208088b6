"""Monthly reports as stored rows: generate a draft, sign it off, freeze it.

A draft is recomputed each time it is generated. A signed report is frozen: its
figures (``MonthlyReport.data``) and their sha256 (``content_hash``) were stored at
signing, and generating that month again returns them unchanged, even when events for
the month arrive later.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest import events as ev
from zoneinfo import ZoneInfo

from sqlmodel import col

from commtest.clock import Clock
from commtest.db import read_session, session_scope
from commtest.errors import CommtestError, NotFoundError
from commtest.models import MonthlyReport, Role, RunStatus, TestRun
from commtest.users import get_user, require_role
from reports.monthly_figures import MonthlyFigures, compute_monthly_figures, month_bounds, parse_month

SIGNING_ROLES = (Role.reviewer, Role.admin)


class AlreadySigned(CommtestError):
    exit_code = 2


class NotSignable(CommtestError):
    """The month cannot be signed (yet): it has not ended, a run is still open, or it holds
    simulated checks. Exit 2: the command was wrong now; the message says when it will be right."""

    exit_code = 2


class FutureMonth(CommtestError):
    exit_code = 2


class MonthlyView(BaseModel):
    """What renderers get: the figures and the state of the sign-off."""

    model_config = ConfigDict(frozen=True)

    report: str = "monthly"
    figures: MonthlyFigures
    status: str
    generated_at: datetime | None
    content_hash: str
    signed_by: str | None = None
    signer_name: str | None = None
    signed_at: datetime | None = None
    includes_simulated: bool = False
    comment: str = ""


def content_hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _figures_data(figures: MonthlyFigures) -> dict[str, Any]:
    data: dict[str, Any] = figures.model_dump(mode="json")
    return data


def refuse_future(month: str, clock: Clock, timezone: str) -> None:
    start, _ = month_bounds(month, timezone)
    if clock.now() < start:
        raise FutureMonth(f"{month} has not begun (it starts on {start.astimezone(ZoneInfo(timezone)):%Y-%m-%d} "
                          f"in {timezone}); there is no draft of a future month")


def signable_problems(engine: Engine, month: str, clock: Clock, timezone: str) -> list[str]:
    """Why ``month`` cannot be signed now (empty: it can). A month is signed only when it is
    over in the report's time zone and every run in it is settled."""
    start, end = month_bounds(month, timezone)
    local_end = end.astimezone(ZoneInfo(timezone))
    problems = []
    if clock.now() < end:
        problems.append(f"{month} is not over: it ends at {local_end:%Y-%m-%d %H:%M} {timezone}; "
                        f"sign it from then on")
    with read_session(engine) as s:
        open_runs = s.exec(select(TestRun.id).where(
            col(TestRun.fire_at) >= start, col(TestRun.fire_at) < end,
            col(TestRun.status).in_((RunStatus.running.value, RunStatus.planned.value)))).all()
    if open_runs:
        problems.append(f"run(s) {', '.join(str(r) for r in open_runs)} of {month} are not settled yet; "
                        "sign once they completed (`commtest runs list`)")
    return problems


def generate_monthly(engine: Engine, month: str, clock: Clock, timezone: str = "Europe/Brussels", *,
                     stale_after_days: int = 180) -> MonthlyReport:
    """The month's report: the frozen one when signed, else a freshly computed draft (stored).
    A month that has not begun has no draft. ``stale_after_days`` is the setting
    ``verified_max_age_days``: endpoints not proven for longer are action points."""
    parse_month(month)
    with read_session(engine) as session:
        row = session.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()
        if row is not None and row.status == "signed":
            return row
    refuse_future(month, clock, timezone)
    figures = compute_monthly_figures(engine, month, timezone, stale_after_days=stale_after_days, now=clock.now())
    data = _figures_data(figures)
    with session_scope(engine) as session:
        row = session.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()
        if row is not None and row.status == "signed":  # signed meanwhile by someone else
            return row
        if row is None:
            row = MonthlyReport(month=month)
        row.data = data
        row.content_hash = content_hash(data)
        row.generated_at = clock.now()
        row.status = "draft"
        session.add(row)
        session.flush()
        session.refresh(row)
        return row


def sign_monthly(
    engine: Engine, month: str, username: str, comment: str, clock: Clock, timezone: str = "Europe/Brussels",
    *, via: str = "cli", include_simulated: bool = False, stale_after_days: int = 180,
) -> MonthlyReport:
    """Sign the month off as ``username`` (a reviewer or an admin); freezes its figures.

    Refused while the month is not over or a run in it is open, and when it holds simulated
    checks unless ``include_simulated`` (the signature then says so)."""
    user = get_user(engine, username)
    require_role(user, SIGNING_ROLES, "sign a monthly report")
    with read_session(engine) as s:
        existing = s.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()
    if existing is not None and existing.status == "signed":
        raise AlreadySigned(f"the report of {month} was signed by {existing.signer_name or existing.signed_by} on "
                            f"{existing.signed_at:%Y-%m-%d}; it is frozen")
    problems = signable_problems(engine, month, clock, timezone)
    if problems:
        raise NotSignable(f"the report of {month} cannot be signed yet: " + "; ".join(problems) + "; nothing was signed")
    row = generate_monthly(engine, month, clock, timezone, stale_after_days=stale_after_days)
    if row.status == "signed":
        raise AlreadySigned(f"the report of {month} was signed by {row.signer_name or row.signed_by} on "
                            f"{row.signed_at:%Y-%m-%d}; it is frozen")
    simulated = int(row.data.get("simulated", {}).get("checks", 0))
    if simulated and not include_simulated:
        raise NotSignable(
            f"the report of {month} holds {simulated} simulated check(s) (a sandbox answered for the officers): they are "
            "not evidence. Sign with --include-simulated to sign it anyway (the signature then says so); nothing was signed"
        )
    now = clock.now()
    with session_scope(engine, durable=True) as session:
        stored = session.exec(select(MonthlyReport).where(MonthlyReport.id == row.id)).one()
        if stored.status == "signed":
            raise AlreadySigned(f"the report of {month} was signed meanwhile by {stored.signed_by}; it is frozen")
        stored.status = "signed"
        stored.signed_by = user.username
        stored.signer_name = user.display_name or user.username
        stored.includes_simulated = bool(simulated)
        stored.signed_at = now
        stored.comment = comment
        stored.content_hash = content_hash(stored.data)
        session.add(stored)
        ev.record_event(
            session,
            at=now,
            actor=f"{via}:{user.username}",
            kind=ev.REPORT_SIGNED,
            month=month,
            by=user.username,
            name=user.display_name or user.username,
            includes_simulated=bool(simulated),
            comment=comment,
            content_hash=stored.content_hash,
        )
        session.flush()
        return stored


def monthly_view(row: MonthlyReport) -> MonthlyView:
    return MonthlyView(
        figures=MonthlyFigures.model_validate(row.data),
        status=row.status,
        generated_at=row.generated_at,
        content_hash=row.content_hash,
        signed_by=row.signed_by,
        signer_name=row.signer_name,
        signed_at=row.signed_at,
        includes_simulated=row.includes_simulated,
        comment=row.comment,
    )


def load_monthly(engine: Engine, month: str) -> MonthlyReport:
    with read_session(engine) as session:
        row = session.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()
        if row is None:
            raise NotFoundError(f"no monthly report for {month}; `commtest report monthly {month}` generates it")
        return row


def write_monthly(
    engine: Engine,
    month: str,
    clock: Clock,
    out_dir: Path,
    formats: tuple[str, ...] = ("html", "pdf"),
    lang: str = "en",
    timezone: str = "Europe/Brussels",
    stale_after_days: int = 180,
) -> list[Path]:
    from reports.render import write_report

    view = monthly_view(generate_monthly(engine, month, clock, timezone, stale_after_days=stale_after_days))
    return write_report(view, Path(out_dir) / f"monthly-{month}", formats, lang)
