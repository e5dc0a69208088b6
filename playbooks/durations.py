"""Durations in playbooks: ISO 8601 (``PT15M``) or the short forms ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m``."""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

_SHORT = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*(?:(\d+)\s*s)?\s*$", re.I)
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$", re.I)


_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d*)?$")


def parse_duration(value: Any, *, numbers_as_seconds: bool = False) -> timedelta:
    """Parse a duration or raise ValueError with a message a coordinator understands.

    A bare number (``15``, ``"15"``) is refused: ``ack_deadline: 15`` read as seconds
    makes every answer late, read as minutes surprises someone else. Only ``0`` needs no
    unit. Callers whose own files define numbers as seconds (the sandbox script's
    ``after:``) pass ``numbers_as_seconds=True``.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a duration such as 15m, 2h or PT15M, got {value!r}")
    if isinstance(value, (int, float)):
        if numbers_as_seconds or value == 0:
            return timedelta(seconds=value)
        raise ValueError(_no_unit(str(value)))
    text = str(value).strip()
    if _NUMBER.match(text):
        if numbers_as_seconds or float(text) == 0:
            return timedelta(seconds=float(text))
        raise ValueError(_no_unit(text))
    m = _ISO.match(text)
    if m and text.upper() not in ("P", "PT"):
        d, h, mi, s = m.groups()
        return timedelta(days=int(d or 0), hours=int(h or 0), minutes=int(mi or 0), seconds=float(s or 0))
    m = _SHORT.match(text)
    if m and any(m.groups()):
        d, h, mi, s = (int(g or 0) for g in m.groups())
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    raise ValueError(f"expected a duration such as 15m, 2h or PT15M, got {text!r}")


def _no_unit(number: str) -> str:
    if number.isdigit():
        return f"{number} has no unit: write {number}m (minutes), {number}s or PT{number}M"
    return f"{number} has no unit: write a duration such as 90s, 15m or PT1M30S"


def format_duration(value: timedelta) -> str:
    """Short human form, e.g. ``1h30m``, ``45s``."""
    total = int(value.total_seconds())
    if total == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
