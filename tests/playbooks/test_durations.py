"""Durations in playbooks always carry their unit: a bare number is refused."""
from __future__ import annotations

from datetime import timedelta

import pytest

from playbooks.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("1h30m", timedelta(minutes=90)),
     ("PT15M", timedelta(minutes=15)), ("P1D", timedelta(days=1))],
)
def test_a_duration_with_its_unit_is_read(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_a_bare_number_is_refused_with_the_forms_to_write_instead() -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration(15)
    assert str(refused.value) == "15 has no unit: write 15m (minutes), 15s or PT15M"


def test_a_bare_number_in_quotes_is_refused_too() -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration("15")
    assert str(refused.value) == "15 has no unit: write 15m (minutes), 15s or PT15M"


def test_a_bare_decimal_number_is_refused() -> None:
    with pytest.raises(ValueError) as refused:
        parse_duration(1.5)
    assert str(refused.value) == "1.5 has no unit: write a duration such as 90s, 15m or PT1M30S"


def test_zero_needs_no_unit_because_it_is_zero_in_every_unit() -> None:
    assert parse_duration(0) == timedelta(0)


def test_a_caller_that_means_seconds_may_still_accept_a_bare_number() -> None:
    assert parse_duration(15, numbers_as_seconds=True) == timedelta(seconds=15)
    assert parse_duration(2.5, numbers_as_seconds=True) == timedelta(seconds=2.5)
