"""Cron expressions in playbooks: crontab weekday numbers, APScheduler triggers.

Crontab counts weekdays from Sunday (0 or 7 = Sunday, 1-5 = Monday to Friday);
APScheduler 3's ``CronTrigger`` counts from Monday (0 = Monday), so ``from_crontab``
would read ``1-5`` as Tuesday to Saturday. The weekday field is converted to names
first. The loader (validation) and the scheduler (fire times) share this one function,
so a schedule means the same thing in both.

A ``cron`` + ``window`` schedule tests on days that are a cron day AND a window day
(``window.days``): ``cron_window_days`` computes those weekdays and ``cron_trigger(...,
weekdays=...)`` fires only on them, for the loader and the scheduler alike.
"""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from playbooks.schema import WEEKDAYS

_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

__all__ = ["cron_trigger", "cron_weekdays", "cron_window_days"]


def cron_trigger(
    expr: str, tz: ZoneInfo | str, *, end: datetime | None = None, weekdays: Iterable[str] | None = None
) -> CronTrigger:
    """APScheduler's trigger for a five-field crontab expression with crontab weekday
    numbers (0 or 7 = Sunday). Raises ValueError with the reason when ``expr`` is wrong;
    the playbook loader can call this to validate ``cron``.

    ``weekdays`` (names, ``mon``..``sun``) further restricts the days it fires on: pass
    ``cron_window_days(expr, window.days)`` for a cron + window schedule. Raises ValueError when
    no weekday is left.
    """
    minute, hour, day, month, weekday = _fields(expr)
    days = _crontab_weekdays(weekday)
    if weekdays is not None:
        wanted = list(weekdays)
        days = [d for d in days if d in wanted]
        if not days:
            raise ValueError(f"cron {expr!r} fires on none of the weekdays {', '.join(wanted)}")
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        # Names in Monday-first order, which APScheduler reads unambiguously.
        day_of_week="*" if len(days) == 7 else ",".join(days),
        timezone=zone,
        # Bounds the search: an impossible expression (30 February) ends here instead
        # of walking APScheduler up to the year 9999.
        end_date=end,
    )


def cron_weekdays(expr: str) -> list[str]:
    """The weekdays ``expr``'s weekday field allows, as names in Monday-first order.

    Only the weekday field: ``0 10 1 * *`` allows all seven (the 1st can be any day).
    Raises ValueError when ``expr`` is malformed."""
    return _crontab_weekdays(_fields(expr)[4])


def cron_window_days(expr: str, window_days: Iterable[str]) -> list[str]:
    """The weekdays a cron + window schedule may test on: cron weekdays that are also
    window days (Monday-first). Empty means the schedule can never fire."""
    allowed = set(window_days)
    return [d for d in cron_weekdays(expr) if d in allowed]


def _fields(expr: str) -> list[str]:
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expr!r} has {len(fields)} field(s); expected 5: minute hour day month weekday"
        )
    return fields


def _crontab_weekdays(field: str) -> list[str]:
    if field in ("*", "?"):
        return list(WEEKDAYS)
    days: set[int] = set()
    for part in field.split(","):
        body, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"cron weekday {part!r}: the step after '/' must be a positive number")
            step = int(step_text)
        if body == "*":
            lo, hi = 0, 6
        elif "-" in body:
            a, b = body.split("-", 1)
            lo, hi = _crontab_day(a), _crontab_day(b)
            if hi == 0 and lo > 0:
                hi = 7  # "fri-sun": Sunday closes the week
        else:
            lo = _crontab_day(body)
            hi = 6 if slash else lo
        if lo > hi:
            raise ValueError(f"cron weekday range {body!r} runs backwards; write e.g. mon-fri or 1-5")
        days.update(n % 7 for n in range(lo, hi + 1, step))
    return [WEEKDAYS[(n - 1) % 7] for n in sorted(days, key=lambda n: (n - 1) % 7)]


def _crontab_day(text: str) -> int:
    token = text.strip().lower()
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    if token[:3] in _CRONTAB_DAYS and len(token) >= 3:
        return _CRONTAB_DAYS.index(token[:3])
    raise ValueError(f"cron weekday {text!r} is not 0-7 (0 and 7 = Sunday) or a name like mon")
