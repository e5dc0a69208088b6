"""What the console and the API may say about tests that have not happened yet.

An announced test shows its moment. An unannounced one shows only what its playbook says in
the open: the month (or the cron days) and the window's days and hours, never the drawn day
or moment, nor the stored ``window_start``/``window_end`` of the draw (which name the day).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, get_day_names
from sqlmodel import Session, col, select

from commtest.i18n import Texts
from commtest.models import RunStatus, Schedule, TestRun
from playbooks.schema import WEEKDAYS, ScheduleSpec
from scheduler.specs import spec_for_revision


@dataclass(frozen=True)
class PlannedTest:
    run_id: int
    playbook_id: str
    title: str
    schedule: str  # PLAYBOOK:KEY, or "" for a run started by hand
    announced: bool
    when: str  # the moment (announced, or started by hand), else "in window ..."
    fire_at: datetime | None  # None when it may not be shown


def _locale(lang: str) -> str:
    return "en_GB" if lang == "en" else lang


def describe_window(sspec: ScheduleSpec, tz: str, fire_at: datetime | None, t: Texts) -> str:
    """``April 2027, Mon–Fri 09:00–16:00`` in the reader's language (never the drawn day)."""
    window = sspec.window
    names = get_day_names("abbreviated", locale=_locale(t.language))
    days = ""
    if window is not None:
        idx = [WEEKDAYS.index(d) for d in window.days]
        days = (f"{names[idx[0]]}–{names[idx[-1]]}" if idx == list(range(idx[0], idx[-1] + 1)) and len(idx) > 2
                else ", ".join(names[i] for i in idx))
        hours = f"{window.start:%H:%M}–{window.end:%H:%M}"
    else:
        hours = ""
    if sspec.months and fire_at is not None:
        month = format_date(fire_at.astimezone(ZoneInfo(tz)).date(), "LLLL yyyy", locale=_locale(t.language))
        return t("%(month)s, %(days)s %(hours)s (%(zone)s)", month=month, days=days, hours=hours, zone=tz)
    return t("on the days of %(cron)s, %(days)s %(hours)s (%(zone)s)", cron=sspec.cron or "", days=days, hours=hours,
             zone=tz)


def may_show_moment(run: TestRun) -> bool:
    """An unannounced scheduled run keeps its moment secret until it starts."""
    return run.announced or run.trigger != "schedule" or run.status != RunStatus.planned.value


def planned_tests(s: Session, t: Texts, limit: int = 20) -> list[PlannedTest]:
    out = []
    runs = s.exec(select(TestRun).where(TestRun.status == RunStatus.planned.value)
                  .order_by(col(TestRun.fire_at)).limit(limit)).all()
    for run in runs:
        spec = spec_for_revision(s, run.revision_id)
        sch = s.get(Schedule, run.schedule_id) if run.schedule_id else None
        sspec = next((x for x in spec.schedules if sch is not None and x.key == sch.key), None)
        tz = (sspec.timezone if sspec and sspec.timezone else spec.timezone)
        if may_show_moment(run):
            when, shown = t.when(run.fire_at), run.fire_at
        elif sspec is not None:
            when, shown = t("in window %(window)s", window=describe_window(sspec, tz, run.fire_at, t)), None
        else:
            when, shown = t("unannounced: the moment is not shown"), None
        out.append(PlannedTest(run.id or 0, run.playbook_id, spec.title_in(t.language),
                               f"{run.playbook_id}:{sch.key}" if sch else "", run.announced, when, shown))
    return out
