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
