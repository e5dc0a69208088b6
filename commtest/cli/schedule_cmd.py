"""``commtest schedule list|pause|resume``. An unannounced test never shows its drawn moment."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.table import Table
from sqlmodel import col, select

from commtest.db import read_session
from commtest.models import RunStatus, Schedule, TestRun

from .base import app_context, cli
from .playbook_cmd import sync_playbooks
from .runview import console, local, whoami

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------- schedules
@cli.group("schedule")
def schedule_group() -> None:
    """Schedules of the playbooks (built from the playbook files)."""


def _find_schedule(s: Any, ref: str) -> Schedule:
    from commtest.schedules import find_schedule

    return find_schedule(s, ref)


@schedule_group.command("list")
def schedule_list() -> None:
    """Every schedule with its next planned moment (unannounced: only the window)."""
    from scheduler.specs import spec_for_revision
    from scheduler.timing import plan_horizon

    app = app_context()
    sync_playbooks(app)
    now = app.clock.now()
    table = Table(title="schedules")
    for c in ("schedule", "state", "kind", "next", "last fired", "description"):
        table.add_column(c)
    with read_session(app.engine) as s:
        for sch in s.exec(select(Schedule).order_by(col(Schedule.playbook_id), col(Schedule.key))).all():
            spec = spec_for_revision(s, sch.revision_id)
            sspec = next((x for x in spec.schedules if x.key == sch.key), None)
            tz = (sspec.timezone if sspec and sspec.timezone else spec.timezone)
            planned = s.exec(select(TestRun).where(TestRun.schedule_id == sch.id,
                                                   TestRun.status == RunStatus.planned.value)).first()
            if planned is not None and sch.announced:
                nxt = local(planned.fire_at, tz)
            elif planned is not None and sspec is not None and sspec.window is not None and planned.fire_at:
                # Unannounced: say no more than the playbook does (the month and the window),
                # never the drawn day or moment.
                month = planned.fire_at.astimezone(ZoneInfo(tz)).strftime("%B %Y")
                w = sspec.window
                nxt = (f"{month}, {_days(w.days)} {w.start:%H:%M}-{w.end:%H:%M} (moment drawn, not shown)"
                       if sspec.months else f"on a {sspec.cron!r} day, {w.start:%H:%M}-{w.end:%H:%M} (moment drawn, not shown)")
            elif sspec is not None:
                occ = plan_horizon(sspec, spec.timezone, now, now + timedelta(days=800), limit=1)
                nxt = (local(occ[0].fire_at, tz) if occ[0].drawn else f"window from {local(occ[0].fire_at, tz)}") if occ else "never"
            else:
                nxt = "-"
            table.add_row(f"{sch.playbook_id}:{sch.key}", "paused" if sch.paused else "active",
                          "announced" if sch.announced else "unannounced", nxt, local(sch.last_fire_at, tz),
                          sch.description)
    console().print(table)


def _days(days: list[str]) -> str:
    week = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    if days == week[: len(days)] and len(days) > 2:
        return f"{days[0]}-{days[-1]}"
    return ",".join(days)


def _set_paused(ref: str, paused: bool) -> None:
    from commtest.schedules import set_paused

    app = app_context()
    sync_playbooks(app, quiet=True)
    set_paused(app.engine, ref, paused, app.clock.now(), actor=f"cli:{whoami()}", by=whoami())
    click.echo(f"schedule {ref} {'paused' if paused else 'resumed'}")


@schedule_group.command("pause")
@click.argument("schedule")
def schedule_pause(schedule: str) -> None:
    """Pause SCHEDULE (PLAYBOOK_ID:KEY): it plans no more runs."""
    _set_paused(schedule, True)


@schedule_group.command("resume")
@click.argument("schedule")
def schedule_resume(schedule: str) -> None:
    """Resume SCHEDULE (PLAYBOOK_ID:KEY)."""
    _set_paused(schedule, False)
