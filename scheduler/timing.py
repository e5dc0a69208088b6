"""When schedules fire: cron fire times, unannounced draws inside windows, misfires.

Pure functions: no I/O, no system clock. Every instant that goes in or comes out is
aware UTC; schedules are *meant* in local wall-clock time of their IANA zone (a window
09:00-16:00 Europe/Brussels is 07:00-14:00 UTC in summer, 08:00-15:00 UTC in winter).

Daylight saving, one rule for everything (see docs/scheduling.md):

* A local time that does not exist (the spring-forward gap, 02:00-03:00 in Brussels on
  the last Sunday of March) is moved forward to the first instant after the gap, i.e.
  03:00 local. That is Vixie cron's rule: late, never early, never skipped.
* A local time that exists twice (the fall-back hour) means its first occurrence
  (``fold=0``) and fires once.

APScheduler 3.11's ``CronTrigger`` finds fire times in wall-clock time, but on its own
it fires an ambiguous time twice (once per fold) and reads a nonexistent time with the
offset in force before the change (02:30 becomes 03:30 local). ``_cron_fire_after``
corrects both to the rule above.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from playbooks.cron import cron_trigger, cron_window_days
from playbooks.schema import WEEKDAYS, ScheduleSpec, WindowSpec

__all__ = [
    "HORIZON",
    "Decision",
    "Occurrence",
    "cron_trigger",
    "local_time",
    "misfire_decision",
    "next_occurrence",
    "plan_horizon",
]

UTC = timezone.utc
HORIZON = timedelta(days=3653)  # "nothing fires in the next 10 years" means never
_TICK = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
# Crontab numbers weekdays from Sunday (0 and 7); APScheduler 3.x from Monday. We always
# hand APScheduler names, so "1-5" keeps meaning Monday to Friday (APScheduler issue 286).

Decision = Literal["wait", "run", "missed"]


@dataclass(frozen=True)
class Occurrence:
    """One planned firing of a schedule.

    ``drawn`` is False for the informational entries of ``plan_horizon`` whose moment is
    not drawn yet: ``fire_at`` is then the earliest moment the window allows.
    """

    fire_at: datetime
    window_start: datetime | None = None
    window_end: datetime | None = None
    announce_at: datetime | None = None
    drawn: bool = True


# -- public API ---------------------------------------------------------------------------


def next_occurrence(
    spec: ScheduleSpec, playbook_tz: str, after: datetime, rng: random.Random
) -> Occurrence | None:
    """The next occurrence strictly after ``after`` (aware), or None within 10 years.

    Window schedules draw the moment with ``rng``: the same seed gives the same moment.
    The engine stores the draw, so a restart never draws again.
    """
    after = _utc(after)
    tz = ZoneInfo(spec.timezone or playbook_tz)
    occ: Occurrence | None
    if spec.window is None:
        assert spec.cron is not None  # the schema requires cron or months+window
        fire = _cron_fire_after(cron_trigger(spec.cron, tz, end=after + HORIZON), tz, after)
        occ = Occurrence(fire_at=fire) if fire else None
    elif spec.months:
        days = _next_month_days(spec.months, spec.window, tz, after)
        occ = _draw(spec.window, tz, rng.choice(days), after, rng) if days else None
    else:
        day = _next_cron_day(spec.cron or "", spec.window, tz, after)
        occ = _draw(spec.window, tz, day, after, rng) if day else None
    return _announced(spec, occ)


def plan_horizon(
    spec: ScheduleSpec,
    playbook_tz: str,
    after: datetime,
    until: datetime,
    rng: random.Random | None = None,
    *,
    limit: int = 1000,
) -> list[Occurrence]:
    """Occurrences in (after, until], for showing upcoming tests (at most ``limit``).

    Unannounced moments are drawn only for the next run, by the engine; here window
    schedules give ``drawn=False`` entries whose window spans the whole month (months +
    window) or the test day (cron + window: a cron day that is also a window day) and
    whose ``fire_at`` is its earliest moment.
    ``rng`` is not used: listing never draws.
    """
    after, until = _utc(after), _utc(until)
    tz = ZoneInfo(spec.timezone or playbook_tz)
    out: list[Occurrence] = []
    cursor = after
    trigger = cron_trigger(spec.cron, tz, end=until) if spec.cron and spec.window is None else None
    while len(out) < limit:
        occ: Occurrence | None
        if trigger is not None:
            fire = _cron_fire_after(trigger, tz, cursor)
            occ = Occurrence(fire_at=fire) if fire else None
            next_cursor = fire
        elif spec.months and spec.window:
            occ, next_cursor = _undrawn_month(spec, spec.window, tz, cursor)
        else:
            assert spec.window is not None
            day = _next_cron_day(spec.cron or "", spec.window, tz, cursor)
            occ = _undrawn(spec.window, tz, day, day, cursor) if day else None
            next_cursor = occ.window_end if occ else None
        if occ is None or next_cursor is None or occ.fire_at > until:
            break
        out.append(_announced(spec, occ) or occ)
        cursor = next_cursor
    return out


def misfire_decision(fire_at: datetime, now: datetime, grace: timedelta) -> Decision:
    """What to do with a fire time seen at ``now``: not yet, run it (late by at most
    ``grace``, boundary included), or record it as missed."""
    if now < fire_at:
        return "wait"
    return "run" if now - fire_at <= grace else "missed"


def local_time(dt_utc: datetime, tz: str) -> datetime:
    """``dt_utc`` as wall-clock time in ``tz``, for display."""
    return _utc(dt_utc).astimezone(ZoneInfo(tz))


# -- cron ---------------------------------------------------------------------------------


def _cron_fire_after(trigger: CronTrigger, tz: ZoneInfo, after: datetime) -> datetime | None:
    cursor = after
    while True:
        raw = trigger.get_next_fire_time(None, cursor + _TICK)  # inclusive: nudge past
        if raw is None:
            return None
        wall = raw.replace(tzinfo=None)
        raw_utc = raw.astimezone(UTC)
        cursor = raw_utc
        if raw.fold == 1 and _is_ambiguous(wall, tz):
            continue  # the repeat of a fall-back hour: it fired at fold=0 already
        fire = _resolve(wall, tz)
        if fire > after:
            return fire


# -- windows ------------------------------------------------------------------------------


def _next_cron_day(cron: str, window: WindowSpec, tz: ZoneInfo, after: datetime) -> date | None:
    """The first local day, from ``after``'s own day on, that is a cron day AND a window
    day (``window.days``) and whose window still holds a whole second strictly after ``after``."""
    days = cron_window_days(cron, window.days)
    if not days:
        return None  # no weekday is both: never (the loader refuses such a schedule)
    # The trigger fires only on the common weekdays, so weekend days of "0 10 * 4 *" with a
    # mon-fri window are never even looked at.
    trigger = cron_trigger(cron, tz, end=after + HORIZON, weekdays=days)
    day = after.astimezone(tz).date()
    while True:
        # The cron only picks days: any fire time inside a day makes it a test day.
        fire = _cron_fire_after(trigger, tz, _resolve(datetime.combine(day, time()), tz) - _TICK)
        if fire is None:
            return None
        day = fire.astimezone(tz).date()
        if WEEKDAYS[day.weekday()] in window.days and _window_bounds(window, tz, day, after) is not None:
            return day
        day += timedelta(days=1)


def _next_month_days(months: list[int], window: WindowSpec, tz: ZoneInfo, after: datetime) -> list[date]:
    """The eligible days of the first listed month, from ``after``'s month on, that has
    any: weekday in the window's days, window not completely past."""
    local = after.astimezone(tz).date()
    year, month = local.year, local.month
    for _ in range(HORIZON.days // 28):
        if month in months:
            days = _eligible_days(window, tz, year, month, after)
            if days:
                return days
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return []


def _eligible_days(window: WindowSpec, tz: ZoneInfo, year: int, month: int, after: datetime) -> list[date]:
    day = date(year, month, 1)
    out = []
    while day.month == month:
        if WEEKDAYS[day.weekday()] in window.days and _window_bounds(window, tz, day, after):
            out.append(day)
        day += timedelta(days=1)
    return out


def _draw(window: WindowSpec, tz: ZoneInfo, day: date, after: datetime, rng: random.Random) -> Occurrence:
    """A whole second drawn uniformly in what is left of ``day``'s window after ``after``."""
    bounds = _window_bounds(window, tz, day, after)
    assert bounds is not None
    start, end, lo = bounds
    # Drawn on the UTC time line between the window's real bounds: uniform in real time,
    # and on a DST day never a local time that does not exist or exists twice.
    seconds = int((end - lo) / _SECOND)
    fire = lo + timedelta(seconds=rng.randrange(seconds))
    return Occurrence(fire_at=fire, window_start=start, window_end=end)


def _window_bounds(
    window: WindowSpec, tz: ZoneInfo, day: date, after: datetime
) -> tuple[datetime, datetime, datetime] | None:
    """(window start, window end, first whole second still drawable) in UTC, or None
    when not one whole second of the window on ``day`` lies strictly after ``after``."""
    start = _resolve(datetime.combine(day, window.start), tz)
    end = _resolve(datetime.combine(day, window.end), tz)
    lo = start if start > after else after.replace(microsecond=0) + _SECOND
    if end - lo < _SECOND:
        return None
    return start, end, lo


def _undrawn(window: WindowSpec, tz: ZoneInfo, first: date, last: date, after: datetime) -> Occurrence:
    head = _window_bounds(window, tz, first, after)
    tail = _window_bounds(window, tz, last, after)
    assert head is not None and tail is not None
    return Occurrence(fire_at=head[2], window_start=head[0], window_end=tail[1], drawn=False)


def _undrawn_month(
    spec: ScheduleSpec, window: WindowSpec, tz: ZoneInfo, after: datetime
) -> tuple[Occurrence | None, datetime | None]:
    assert spec.months is not None
    days = _next_month_days(spec.months, window, tz, after)
    if not days:
        return None, None
    occ = _undrawn(window, tz, days[0], days[-1], after)
    return occ, occ.window_end


# -- time zone arithmetic -----------------------------------------------------------------


def _resolve(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant a local wall-clock time means: fold=0 when it exists twice, the
    end of the gap when it does not exist."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap. fold=1 reads the wall time with the offset after the change, which
    # lands before the change; fold=0 with the offset before, which lands after it.
    # The change itself lies between: find it to the second (transitions are whole seconds).
    lo = int(wall.replace(tzinfo=tz, fold=1).timestamp())
    hi = int(first.timestamp())
    lo, hi = min(lo, hi), max(lo, hi)
    target = datetime.fromtimestamp(hi, tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _is_ambiguous(wall: datetime, tz: ZoneInfo) -> bool:
    return wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset()


def _announced(spec: ScheduleSpec, occ: Occurrence | None) -> Occurrence | None:
    # An unannounced test has no announcement: nothing may reveal its moment.
    if occ is None or not occ.drawn or not (spec.announced and spec.announce_before):
        return occ
    return replace(occ, announce_at=occ.fire_at - spec.announce_before)


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("expected an aware datetime (UTC); got a naive one")
    return value.astimezone(UTC)
