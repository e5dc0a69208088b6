"""Language choice for the web pages.

Every text comes from the gettext catalogues (commtest.i18n): the ack pages from ``officer``
(nl, fr, de, lb, en), the console from ``staff`` (nl, fr, de, en), through ``Texts`` and the
templates' ``_()``.
"""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from commtest.i18n import DOMAIN_LANGUAGES, LANGUAGE_NAMES, format_duration as _format_duration, format_moment

LANGUAGES = DOMAIN_LANGUAGES["officer"]
CONSOLE_LANGUAGES = DOMAIN_LANGUAGES["staff"]
__all__ = ["CONSOLE_LANGUAGES", "LANGUAGES", "LANGUAGE_NAMES", "format_duration", "format_when",
           "pick_console_language", "pick_language"]


def pick_language(
    requested: str | None, preferred: str | Sequence[str] | None, fallback: str = "en"
) -> str:
    """``?lang=`` when the pages have it, else the first of ``preferred`` they have (the
    ping's language, then the contact point's other languages, then its organisation's),
    else ``fallback``, else English."""
    wanted = [preferred] if isinstance(preferred, str) or preferred is None else list(preferred)
    for tag in (requested, *wanted, fallback):
        base = (tag or "").split("-")[0].split("_")[0].lower()
        if base in LANGUAGES:
            return base
    return "en"


def format_when(at: datetime | None, zone: str, language: str) -> str:
    """A moment in the reader's local time, e.g. ``14 apr 2026 10:15 CEST`` (24-hour clock)."""
    return format_moment(at, zone, language)


def format_duration(ms: int | None, language: str) -> str:
    return _format_duration(ms, language)


def pick_console_language(requested: str | None, fallback: str = "en") -> str:
    """``?lang=`` when the console speaks it, else ``fallback`` when it does, else English."""
    for tag in (requested, fallback):
        base = (tag or "").split("-")[0].split("_")[0].lower()
        if base in CONSOLE_LANGUAGES:
            return base
    return "en"
