from __future__ import annotations

import random
from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from playbooks.schema import WEEKDAYS, ScheduleSpec
from scheduler import timing
from scheduler.timing import (
    Occurrence,
    cron_trigger,
    local_time,
    misfire_decision,
    next_occurrence,
    plan_horizon,
)

UTC = timezone.utc
BXL = "Europe/Brussels"
BRUSSELS = ZoneInfo(BXL)


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def cron(expr: str, **extra: object) -> ScheduleSpec:
    return ScheduleSpec(key="k", cron=expr, **extra)  # type: ignore[arg-type]


def fires(spec: ScheduleSpec, after: datetime, count: int, tz: str = BXL) -> list[datetime]:
    out = []
    for _ in range(count):
        occ = next_occurrence(spec, tz, after, random.Random(0))
        assert occ is not None
        out.append(occ.fire_at)
        after = occ.fire_at
    return out


def test_the_public_names_are_exported() -> None:
    assert set(timing.__all__) == {
        "HORIZON", "Decision", "Occurrence", "cron_trigger", "local_time",
        "misfire_decision", "next_occurrence", "plan_horizon",
    }


# -- cron -----------------------------------------------------------------------------------


def test_a_10_00_brussels_cron_fires_at_08_00_utc_in_summer_and_09_00_utc_in_winter() -> None:
    spec = cron("0 10 * * *")
    summer = next_occurrence(spec, BXL, at(2026, 7, 1, 12), random.Random(0))
    winter = next_occurrence(spec, BXL, at(2026, 12, 1, 12), random.Random(0))
    assert summer == Occurrence(fire_at=at(2026, 7, 2, 8))
    assert winter == Occurrence(fire_at=at(2026, 12, 2, 9))


def test_the_schedule_timezone_overrides_the_playbook_timezone() -> None:
    spec = cron("0 10 * * *", timezone="Europe/London")
    occ = next_occurrence(spec, BXL, at(2026, 12, 1, 12), random.Random(0))
    assert occ is not None and occ.fire_at == at(2026, 12, 2, 10)


def test_the_next_fire_time_is_strictly_after_the_given_instant() -> None:
    occ = next_occurrence(cron("0 10 * * *"), BXL, at(2026, 12, 2, 9), random.Random(0))
    assert occ is not None and occ.fire_at == at(2026, 12, 3, 9)


def test_a_nonexistent_02_30_on_the_spring_forward_day_fires_once_at_03_00_local() -> None:
    # 29 March 2026: Brussels jumps from 02:00 CET to 03:00 CEST, so 02:30 does not exist.
    # APScheduler 3.11 alone would read 02:30 with the old offset (01:30 UTC = 03:30 CEST);
    # we follow Vixie cron instead: a missing time fires right after the change, 03:00 CEST.
    got = fires(cron("30 2 * * *"), at(2026, 3, 27, 12), 4)
    assert got == [at(2026, 3, 28, 1, 30), at(2026, 3, 29, 1, 0), at(2026, 3, 30, 0, 30), at(2026, 3, 31, 0, 30)]
    assert local_time(got[1], BXL).replace(tzinfo=None) == datetime(2026, 3, 29, 3, 0)


def test_an_ambiguous_02_30_on_the_fall_back_day_fires_once_at_its_first_occurrence() -> None:
    # 25 October 2026: 02:00-03:00 happens twice. APScheduler alone fires 02:30 twice
    # (00:30 UTC and 01:30 UTC); the first occurrence (CEST, fold=0) is the one we keep.
    got = fires(cron("30 2 * * *"), at(2026, 10, 23, 12), 4)
    assert got == [at(2026, 10, 24, 0, 30), at(2026, 10, 25, 0, 30), at(2026, 10, 26, 1, 30), at(2026, 10, 27, 1, 30)]


def test_an_hourly_cron_across_both_changes_never_repeats_a_wall_clock_hour() -> None:
    for start in (at(2026, 3, 28, 20), at(2026, 10, 24, 20)):
        got = fires(cron("0 * * * *"), start, 12)
        walls = [local_time(f, BXL).replace(tzinfo=None) for f in got]
        assert got == sorted(set(got)), "fire times must strictly increase"
        assert len(set(walls)) == len(walls), "no wall-clock hour fires twice"


def test_crontab_weekday_numbers_count_from_sunday_unlike_apscheduler_3() -> None:
    weekdays = {local_time(f, BXL).strftime("%a") for f in fires(cron("0 10 * * 1-5"), at(2026, 4, 1), 10)}
    assert weekdays == {"Mon", "Tue", "Wed", "Thu", "Fri"}
    for sunday in ("0", "7", "sun"):
        (fire,) = fires(cron(f"0 10 * * {sunday}"), at(2026, 4, 1), 1)
        assert local_time(fire, BXL).strftime("%a") == "Sun"
    weekend = {local_time(f, BXL).strftime("%a") for f in fires(cron("0 10 * * fri-sun"), at(2026, 4, 1), 6)}
    assert weekend == {"Fri", "Sat", "Sun"}


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 10 * *", "cron '0 10 * *' has 4 field(s); expected 5: minute hour day month weekday"),
        ("0 10 * * 8", "cron weekday '8' is not 0-7 (0 and 7 = Sunday) or a name like mon"),
        ("0 10 * * fri-mon", "cron weekday range 'fri-mon' runs backwards; write e.g. mon-fri or 1-5"),
        ("0 10 * * */0", "cron weekday '*/0': the step after '/' must be a positive number"),
    ],
)
def test_a_wrong_cron_expression_is_refused_with_the_reason(expr: str, message: str) -> None:
    with pytest.raises(ValueError) as err:
        cron_trigger(expr, BXL)
    assert str(err.value) == message


def test_a_cron_that_never_matches_gives_none() -> None:
    assert next_occurrence(cron("0 10 30 2 *"), BXL, at(2026, 1, 1), random.Random(0)) is None


def test_a_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="expected an aware datetime"):
        next_occurrence(cron("0 10 * * *"), BXL, datetime(2026, 1, 1), random.Random(0))


# -- windows ----------------------------------------------------------------------------------


def window_spec(months: list[int], days: str = "tue,wed,thu", start: str = "09:00", end: str = "16:00") -> ScheduleSpec:
    return ScheduleSpec(key="k", months=months, window={"days": days, "start": start, "end": end})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("months", "after", "utc_start"),
    [([4, 9], at(2026, 3, 20, 12), 7), ([11], at(2026, 3, 20, 12), 8)],
    ids=["summer", "winter"],
)
def test_a_months_window_draw_lands_inside_the_window_on_an_allowed_day_for_500_seeds(
    months: list[int], after: datetime, utc_start: int
) -> None:
    spec = window_spec(months)
    seen_days = set()
    for seed in range(500):
        occ = next_occurrence(spec, BXL, after, random.Random(seed))
        assert occ is not None and occ.drawn
        local = local_time(occ.fire_at, BXL)
        assert local.month == months[0] and local.year == 2026
        assert WEEKDAYS[local.weekday()] in ("tue", "wed", "thu")
        assert time(9) <= local.time() < time(16)
        assert occ.window_start is not None and occ.window_end is not None
        assert occ.window_start <= occ.fire_at < occ.window_end
        assert occ.window_start.hour == utc_start and occ.window_end - occ.window_start == timedelta(hours=7)
        assert occ.fire_at.microsecond == 0 and occ.announce_at is None
        seen_days.add(local.date())
    assert len(seen_days) > 8, "the day is drawn among the month's eligible days, not always the first"


def test_the_same_seed_draws_the_same_moment_and_other_seeds_differ() -> None:
    spec = window_spec([4])
    first = next_occurrence(spec, BXL, at(2026, 3, 1), random.Random(42))
    again = next_occurrence(spec, BXL, at(2026, 3, 1), random.Random(42))
    others = {next_occurrence(spec, BXL, at(2026, 3, 1), random.Random(s)) for s in range(5)}
    assert first == again
    assert len(others) > 1


def test_a_schedule_whose_months_are_past_this_year_moves_to_next_year() -> None:
    occ = next_occurrence(window_spec([2, 3]), BXL, at(2026, 4, 14, 8), random.Random(1))
    assert occ is not None
    assert local_time(occ.fire_at, BXL).year == 2027
    assert local_time(occ.fire_at, BXL).month == 2


def test_a_draw_today_after_the_window_opened_is_still_in_the_future() -> None:
    # Tuesday 14 April 2026, 15:59:30 local: half a minute of the window is left.
    after = at(2026, 4, 14, 13, 59, 30)
    spec = window_spec([4], days="tue")
    for seed in range(50):
        occ = next_occurrence(spec, BXL, after, random.Random(seed))
        assert occ is not None and occ.fire_at > after


def test_a_window_that_spans_the_spring_forward_gap_never_draws_a_missing_time() -> None:
    spec = window_spec([3], days="sun", start="01:00", end="04:00")
    after = at(2026, 3, 28, 12)  # Sunday 29 March is the last eligible day of March
    for seed in range(300):
        occ = next_occurrence(spec, BXL, after, random.Random(seed))
        assert occ is not None
        # 01:00 CET is 00:00 UTC and 04:00 CEST is 02:00 UTC: two real hours.
        assert at(2026, 3, 29, 0) <= occ.fire_at < at(2026, 3, 29, 2)
        assert not time(2) <= local_time(occ.fire_at, BXL).time() < time(3)


def test_cron_with_a_window_draws_inside_the_window_on_the_cron_days() -> None:
    spec = cron("0 0 * * mon", window={"start": "09:00", "end": "12:00"})
    # Monday 13 April 2026 at 08:00 local: the cron's midnight has passed, but Monday is
    # a cron day and its window is still ahead.
    occ = next_occurrence(spec, BXL, at(2026, 4, 13, 6), random.Random(3))
    assert occ is not None
    assert occ.window_start == at(2026, 4, 13, 7) and occ.window_end == at(2026, 4, 13, 10)
    assert occ.window_start <= occ.fire_at < occ.window_end
    # At 12:00 local Monday's window is over: the next Monday.
    later = next_occurrence(spec, BXL, at(2026, 4, 13, 10), random.Random(3))
    assert later is not None and local_time(later.fire_at, BXL).date().isoformat() == "2026-04-20"


def test_an_announced_schedule_is_announced_before_its_fire_time() -> None:
    spec = cron("0 10 * * 1-5", announced=True, announce_before="2d")
    occ = next_occurrence(spec, BXL, at(2026, 4, 18, 8), random.Random(0))
    assert occ is not None
    assert occ.fire_at == at(2026, 4, 20, 8)
    assert occ.announce_at == at(2026, 4, 18, 8)


def test_an_unannounced_drawn_schedule_has_no_announcement() -> None:
    occ = next_occurrence(window_spec([4]), BXL, at(2026, 3, 1), random.Random(0))
    assert occ is not None and occ.announce_at is None


# -- horizon ----------------------------------------------------------------------------------


def test_the_horizon_of_a_cron_lists_its_fire_times_in_the_interval() -> None:
    got = plan_horizon(cron("0 10 * * mon"), BXL, at(2026, 4, 6, 8), at(2026, 4, 20, 8))
    assert [o.fire_at for o in got] == [at(2026, 4, 13, 8), at(2026, 4, 20, 8)]
    assert all(o.drawn for o in got)


def test_the_horizon_of_a_months_window_shows_undrawn_months_from_their_first_eligible_day() -> None:
    got = plan_horizon(window_spec([4, 9]), BXL, at(2026, 3, 1), at(2027, 5, 1), random.Random(0))
    assert [o.drawn for o in got] == [False, False, False]
    april, september, april_next = got
    assert april.fire_at == april.window_start == at(2026, 4, 1, 7)  # Wednesday 1 April
    assert april.window_end == at(2026, 4, 30, 14)  # Thursday 30 April, 16:00 CEST
    assert september.fire_at == at(2026, 9, 1, 7)  # Tuesday 1 September
    assert april_next.fire_at == at(2027, 4, 1, 7)  # Thursday 1 April
    assert all(o.announce_at is None for o in got)


def test_the_horizon_stops_at_its_limit() -> None:
    got = plan_horizon(cron("* * * * *"), BXL, at(2026, 1, 1), at(2027, 1, 1), limit=5)
    assert len(got) == 5


# -- misfires ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("late", "decision"),
    [
        (timedelta(seconds=-1), "wait"),
        (timedelta(0), "run"),
        (timedelta(minutes=5), "run"),  # exactly at the grace: still run
        (timedelta(minutes=5, microseconds=1), "missed"),
    ],
)
def test_a_misfire_is_run_up_to_and_including_the_grace_then_missed(late: timedelta, decision: str) -> None:
    fire_at = at(2026, 4, 14, 8)
    assert misfire_decision(fire_at, fire_at + late, timedelta(minutes=5)) == decision


def test_the_horizon_of_a_cron_window_shows_each_cron_day_undrawn() -> None:
    spec = cron("0 0 * * mon", window={"start": "09:00", "end": "12:00"})
    got = plan_horizon(spec, BXL, at(2026, 4, 13, 8), at(2026, 4, 27, 12))
    assert [(o.fire_at, o.window_end, o.drawn) for o in got] == [
        (at(2026, 4, 13, 8, 0, 1), at(2026, 4, 13, 10), False),  # already open: from now on
        (at(2026, 4, 20, 7), at(2026, 4, 20, 10), False),
        (at(2026, 4, 27, 7), at(2026, 4, 27, 10), False),
    ]


# -- cron + window: a test day is a cron day AND a window day -----------------------------------


def test_a_cron_window_plans_only_days_that_are_both_cron_days_and_window_days() -> None:
    spec = cron("0 10 * 4 *", window={"days": "mon-fri", "start": "09:00", "end": "16:00"})
    got = plan_horizon(spec, BXL, at(2026, 3, 31, 22), at(2026, 5, 1))
    days = [local_time(o.fire_at, BXL).date() for o in got]
    assert all(WEEKDAYS[d.weekday()] in ("mon", "tue", "wed", "thu", "fri") for d in days)
    assert len(days) == 22  # April 2026 has 22 weekdays; its 8 weekend days are cron days only
    assert days[0].isoformat() == "2026-04-01" and days[-1].isoformat() == "2026-04-30"


def test_a_cron_window_skips_the_weekend_the_cron_alone_would_pick() -> None:
    spec = cron("0 10 * 4 *", window={"days": "mon-fri", "start": "09:00", "end": "16:00"})
    # Friday 10 April 2026, 17:00 local: the window is over; Saturday and Sunday are cron days only.
    for seed in range(50):
        occ = next_occurrence(spec, BXL, at(2026, 4, 10, 15), random.Random(seed))
        assert occ is not None
        assert local_time(occ.fire_at, BXL).date().isoformat() == "2026-04-13"  # Monday


def test_a_cron_window_without_a_common_day_never_fires() -> None:
    spec = cron("0 10 * 4 mon-fri", window={"days": ["sat", "sun"], "start": "09:00", "end": "16:00"})
    assert next_occurrence(spec, BXL, at(2026, 3, 1), random.Random(0)) is None
    assert plan_horizon(spec, BXL, at(2026, 3, 1), at(2036, 3, 1)) == []
