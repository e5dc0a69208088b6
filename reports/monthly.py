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
from commtest.clock import Clock
from commtest.db import session_scope
from commtest.errors import CommtestError, NotFoundError
from commtest.models import MonthlyReport, Role
from commtest.users import get_user, require_role
from reports.monthly_figures import MonthlyFigures, compute_monthly_figures, parse_month

SIGNING_ROLES = (Role.reviewer, Role.admin)


class AlreadySigned(CommtestError):
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
    signed_at: datetime | None = None
    comment: str = ""


def content_hash(data: dict[str, Any]) -> str:
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _figures_data(figures: MonthlyFigures) -> dict[str, Any]:
    data: dict[str, Any] = figures.model_dump(mode="json")
    return data


def generate_monthly(engine: Engine, month: str, clock: Clock, timezone: str = "Europe/Brussels") -> MonthlyReport:
    """The month's report: the frozen one when signed, else a freshly computed draft (stored)."""
    parse_month(month)
    with session_scope(engine) as session:
        row = session.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()
        if row is not None and row.status == "signed":
            return row
    figures = compute_monthly_figures(engine, month, timezone)
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
    *, via: str = "cli",
) -> MonthlyReport:
    """Sign the month off as ``username`` (a reviewer or an admin); freezes its figures."""
    user = get_user(engine, username)
    require_role(user, SIGNING_ROLES, "sign a monthly report")
    row = generate_monthly(engine, month, clock, timezone)
    if row.status == "signed":
        raise AlreadySigned(f"the report of {month} was signed by {row.signed_by} on {row.signed_at:%Y-%m-%d}; it is frozen")
    now = clock.now()
    with session_scope(engine, durable=True) as session:
        stored = session.exec(select(MonthlyReport).where(MonthlyReport.id == row.id)).one()
        if stored.status == "signed":
            raise AlreadySigned(f"the report of {month} was signed meanwhile by {stored.signed_by}; it is frozen")
        stored.status = "signed"
        stored.signed_by = user.username
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
        signed_at=row.signed_at,
        comment=row.comment,
    )


def load_monthly(engine: Engine, month: str) -> MonthlyReport:
    with session_scope(engine) as session:
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
) -> list[Path]:
    from reports.render import write_report

    view = monthly_view(generate_monthly(engine, month, clock, timezone))
    return write_report(view, Path(out_dir) / f"monthly-{month}", formats, lang)
