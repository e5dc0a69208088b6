"""Validation of playbook schedules with APScheduler 3.11's own cron parser.

We only validate here; the scheduling engine (``scheduler/``) computes fire times. Using
the same parser as the engine means a schedule that validates is one the engine accepts.
"""
from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from playbooks.cron import cron_trigger as _cron_trigger
from playbooks.cron import cron_weekdays, cron_window_days
from playbooks.schema import WEEKDAYS, Loc, ScheduleSpec

__all__ = ["HORIZON", "REFERENCE_START", "cron_trigger", "schedule_problems"]

# Fixed, so that the same file always validates the same way whenever it is checked.
REFERENCE_START = datetime(2025, 1, 1)
HORIZON = timedelta(days=366 * 10)


def cron_trigger(expression: str, zone: str) -> CronTrigger:
    """Parse a five-field crontab expression (crontab weekday numbers); raises ValueError."""
    return _cron_trigger(expression, zone)


def schedule_problems(schedule: ScheduleSpec, playbook_zone: str) -> list[tuple[Loc, str]]:
    """Problems of one (already schema-valid) schedule, located relative to the schedule."""
    zone = schedule.timezone or playbook_zone
    problems: list[tuple[Loc, str]] = []
    if schedule.cron:
        try:
            trigger = cron_trigger(schedule.cron, zone)
        except ValueError as exc:
            return [
                (
                    ("cron",),
                    f"invalid cron expression {schedule.cron!r}: {exc}; "
                    "expected five fields: minute hour day month weekday, e.g. '0 10 * 4 tue'",
                )
            ]
        start = REFERENCE_START.replace(tzinfo=ZoneInfo(zone))
        # end_date stops APScheduler's search early instead of walking to year 9999.
        trigger.end_date = start + HORIZON
        if trigger.get_next_fire_time(None, start) is None:
            return [(("cron",), f"this schedule never fires: {schedule.cron!r} matches no moment in 10 years")]
        if schedule.window:
            problems.extend(_cron_window_problems(schedule.cron, schedule.window.days, zone, start))
    if schedule.months and schedule.window:
        allowed = {WEEKDAYS.index(d) for d in schedule.window.days}
        for i, month in enumerate(schedule.months):
            year = REFERENCE_START.year
            days = calendar.monthrange(year, month)[1]
            if not any(calendar.weekday(year, month, d) in allowed for d in range(1, days + 1)):
                problems.append(
                    (("months", i), f"this schedule never fires: no window day in {calendar.month_name[month]}")
                )
    return problems


def _cron_window_problems(cron: str, window_days: list[str], zone: str, start: datetime) -> list[tuple[Loc, str]]:
    """A cron + window schedule tests on days that are a cron day AND a window day."""
    days = cron_window_days(cron, window_days)
    if not days:
        return [
            (
                ("window", "days"),
                "impossible schedule, it never fires: a test day must be a cron day and a window day, "
                f"but cron {cron!r} picks only {', '.join(cron_weekdays(cron))} and window.days only "
                f"{', '.join(window_days)}; change the cron's weekday field or window.days",
            )
        ]
    trigger = _cron_trigger(cron, zone, end=start + HORIZON, weekdays=days)
    if trigger.get_next_fire_time(None, start) is None:
        return [
            (
                ("cron",),
                f"this schedule never fires: no day in 10 years is both a day of cron {cron!r} "
                f"and a window day ({', '.join(window_days)})",
            )
        ]
    return []
