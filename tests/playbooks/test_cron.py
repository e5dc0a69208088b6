from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from playbooks.cron import cron_trigger
from playbooks.schedule_check import schedule_problems
from playbooks.schema import ScheduleSpec

TZ = ZoneInfo("Europe/Brussels")


def test_crontab_weekday_numbers_count_from_sunday_as_in_unix_cron() -> None:
    trigger = cron_trigger("0 10 * * 1-5", TZ)
    saturday = datetime(2026, 4, 11, 12, 0, tzinfo=TZ)
    assert trigger.get_next_fire_time(None, saturday).strftime("%a %H:%M") == "Mon 10:00"


def test_a_sunday_only_schedule_validates_and_fires_on_sunday() -> None:
    spec = ScheduleSpec(key="sunday", cron="0 10 * * 7")
    assert schedule_problems(spec, "Europe/Brussels") == []
    monday = datetime(2026, 4, 13, 12, 0, tzinfo=TZ)
    assert cron_trigger("0 10 * * 7", TZ).get_next_fire_time(None, monday).strftime("%a %d") == "Sun 19"


def _cron_window(expr: str, days: object) -> ScheduleSpec:
    return ScheduleSpec(key="k", cron=expr, window={"days": days, "start": "09:00", "end": "16:00"})  # type: ignore[arg-type]


def test_a_cron_window_with_common_days_validates() -> None:
    assert schedule_problems(_cron_window("0 10 * 4 *", "mon-fri"), "Europe/Brussels") == []


def test_a_cron_window_whose_cron_days_are_never_window_days_is_an_impossible_schedule() -> None:
    problems = schedule_problems(_cron_window("0 10 * 4 mon-fri", ["sat", "sun"]), "Europe/Brussels")
    assert problems == [
        (
            ("window", "days"),
            "impossible schedule, it never fires: a test day must be a cron day and a window day, "
            "but cron '0 10 * 4 mon-fri' picks only mon, tue, wed, thu, fri and window.days only sat, sun; "
            "change the cron's weekday field or window.days",
        )
    ]


def test_a_cron_window_whose_common_days_never_come_within_10_years_never_fires() -> None:
    # 29 February is a Tuesday in 2028 and a Sunday in 2032; the next Monday one is in 2044.
    assert schedule_problems(ScheduleSpec(key="k", cron="0 10 29 2 *"), "Europe/Brussels") == []
    problems = schedule_problems(_cron_window("0 10 29 2 *", ["mon"]), "Europe/Brussels")
    assert problems == [
        (
            ("cron",),
            "this schedule never fires: no day in 10 years is both a day of cron '0 10 29 2 *' "
            "and a window day (mon)",
        )
    ]
