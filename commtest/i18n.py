"""Every text for people goes through gettext catalogues (Babel), one mechanism for web pages,
e-mails, voice and SMS texts, reports and the console (CONVENTIONS.md rule 11); and every
date, time, number and duration is formatted here, by Babel, in the reader's locale.

Two catalogues (gettext *domains*), because two audiences read in different languages:

* ``officer``: what a duty officer sees or hears (acknowledgement pages, the e-mail button,
  the voice prompts, SMS answers, the video page): nl, fr, de, lb, en.
* ``staff``: what coordinators and reviewers read (reports, the console): nl, fr, de, en.

The English text is the message id. Translations live in
``commtest/locale/<lang>/LC_MESSAGES/<domain>.po``; ``make catalogues`` extracts the
messages from the Python code and the Jinja2 templates (``babel-<domain>.cfg``) and merges
them into the ``.po`` files. A ``.po`` file is compiled in memory the first time it is
needed (a ``.mo`` beside it is used when it is newer), so an editable checkout never needs a
compile step and never runs stale translations. A test fails when a message has no
translation in one of its domain's languages.

Formatting, one style everywhere:

* durations: ``45 s``, ``3 min 16 s``, ``1 h 02 min`` with the locale's unit names;
* moments: the locale's medium date and a 24-hour ``HH:mm`` (or ``HH:mm:ss``) clock, in the
  reader's zone, with the zone's abbreviation (never ``Sep 15, 2026, 10:26 PM``).
"""
from __future__ import annotations

import functools
import io
import threading
from collections.abc import Sequence
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date as _babel_date
from babel.dates import format_datetime as _babel_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations

Domain = Literal["officer", "staff"]
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN_LANGUAGES: dict[str, tuple[str, ...]] = {
    "officer": ("nl", "fr", "de", "lb", "en"),
    "staff": ("nl", "fr", "de", "en"),
}
SOURCE_LANGUAGE = "en"
LANGUAGE_NAMES = {"nl": "Nederlands", "fr": "Français", "de": "Deutsch", "lb": "Lëtzebuergesch", "en": "English"}

_cache: dict[tuple[str, str], NullTranslations] = {}
_lock = threading.Lock()


def po_path(domain: str, language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{domain}.po"


def translations(domain: str, language: str) -> NullTranslations:
    """The catalogue of ``domain`` in ``language`` (English: the message ids themselves)."""
    key = (domain, language)
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    loaded = _load(domain, language)
    with _lock:
        _cache[key] = loaded
    return loaded


def _load(domain: str, language: str) -> NullTranslations:
    po = po_path(domain, language)
    mo = po.with_suffix(".mo")
    if mo.is_file() and (not po.is_file() or mo.stat().st_mtime >= po.stat().st_mtime):
        with mo.open("rb") as fh:
            return Translations(fh, domain=domain)
    if not po.is_file():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=language, domain=domain)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer, domain=domain)


def pick(language: str | None, domain: str) -> str:
    """The best language ``domain`` has for a BCP 47 tag (``nl-BE`` → ``nl``), else English."""
    base = (language or "").replace("_", "-").split("-")[0].lower()
    return base if base in DOMAIN_LANGUAGES[domain] else SOURCE_LANGUAGE


def pick_first(languages: Sequence[str | None], domain: str) -> str:
    """The first of ``languages`` that ``domain`` has (a contact's languages in order)."""
    for tag in languages:
        base = (tag or "").replace("_", "-").split("-")[0].lower()
        if base in DOMAIN_LANGUAGES[domain]:
            return base
    return SOURCE_LANGUAGE


class Texts:
    """gettext for one domain and language, plus the formatting of that language.

    ``t("Sent at %(when)s", when=...)`` translates, then fills the named placeholders;
    ``t.n("%(n)d ping", "%(n)d pings", n)`` chooses the plural form of the language.
    Jinja2 templates get ``_`` / ``gettext`` / ``ngettext`` bound to it (``jinja_globals``).
    """

    def __init__(self, domain: str, language: str, timezone: str = "Europe/Brussels") -> None:
        self.domain = domain
        self.language = pick(language, domain)
        self.timezone = timezone
        self._t = translations(domain, self.language)

    def __call__(self, message: str, **values: Any) -> str:
        text = self._t.gettext(message)
        return text % values if values else text

    def n(self, singular: str, plural: str, count: int, **values: Any) -> str:
        text = self._t.ngettext(singular, plural, count)
        return text % {"n": count, **values}

    def p(self, context: str, message: str, **values: Any) -> str:
        """A message whose translation depends on ``context`` (``pgettext``)."""
        text = self._t.pgettext(context, message)
        return text % values if values else text

    # -- formatting (one style everywhere) ----------------------------------------------
    def duration(self, ms: int | float | None) -> str:
        return format_duration(ms, self.language)

    def when(self, at: datetime | None, *, seconds: bool = False) -> str:
        return format_moment(at, self.timezone, self.language, seconds=seconds)

    def clock(self, at: datetime | None, *, seconds: bool = True) -> str:
        return format_clock(at, self.timezone, self.language, seconds=seconds)

    def day(self, value: date | datetime | None) -> str:
        return format_day(value, self.timezone, self.language)

    def number(self, value: int | float) -> str:
        return format_decimal(value, locale=_locale(self.language))

    def percent(self, share: float | None) -> str:
        if share is None:
            return "–"
        return format_percent(share, "#,##0%" if share in (0, 1) else "#,##0.0%", locale=_locale(self.language))

    def jinja_globals(self) -> dict[str, Any]:
        return {"_": self, "gettext": self, "ngettext": self.n, "pgettext": self.p}


@functools.lru_cache(maxsize=64)
def _locale(language: str) -> Locale:
    # English readers here are European: day-month-year and a 24-hour clock (never US style).
    tag = "en_GB" if language.split("-")[0] == "en" else language.replace("-", "_")
    try:
        return Locale.parse(tag)
    except (ValueError, UnknownLocaleError):
        return Locale.parse("en_GB")


def format_duration(ms: int | float | None, language: str) -> str:
    """``45 s``, ``3 min 16 s``, ``1 h 02 min`` (the unit symbols are the catalogue's, so
    German reads ``3 Min. 16 Sek.``): to the second below an hour, to the minute above."""
    if ms is None:
        return "–"
    t = translations("officer", pick(language, "officer"))
    seconds = int(round(ms / 1000))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return t.gettext("%(h)d h %(m)02d min") % {"h": hours, "m": minutes}
    if minutes and not secs:
        return t.gettext("%(m)d min") % {"m": minutes}
    if minutes:
        return t.gettext("%(m)d min %(s)d s") % {"m": minutes, "s": secs}
    return t.gettext("%(s)d s") % {"s": secs}


def _zone(zone: str) -> ZoneInfo:
    return ZoneInfo(zone)


def format_moment(at: datetime | None, zone: str, language: str, *, seconds: bool = False) -> str:
    """The locale's medium date, a 24-hour clock and the zone's abbreviation:
    ``15 sep. 2026 10:26 CEST`` (nl), ``15 sept. 2026 10:26 CEST`` (fr)."""
    if at is None:
        return "–"
    # Only the minute (or second) shows, and zones change their offsets on whole minutes: one
    # formatting serves every moment of that minute (Babel's formatting is the costly part of a
    # page, and of a report's timeline). Keyed by the minute's number, which is cheaper to take
    # and to hash than an aware datetime.
    if seconds:
        return _moment(at.replace(microsecond=0), zone, language, True)
    return _minute(int(at.timestamp() // 60), zone, language)


@functools.lru_cache(maxsize=4096)
def _minute(minute: int, zone: str, language: str) -> str:
    return _moment(datetime.fromtimestamp(minute * 60, timezone.utc), zone, language, False)


@functools.lru_cache(maxsize=4096)
def _moment(at: datetime, zone: str, language: str, seconds: bool) -> str:
    tz = _zone(zone)
    local = at.astimezone(tz)
    day = _babel_date(local.date(), "medium", locale=_locale(language))
    clock = _babel_datetime(local, "HH:mm:ss" if seconds else "HH:mm", tzinfo=tz, locale=_locale(language))
    return f"{day} {clock} {local.tzname() or zone}"


def format_clock(at: datetime | None, zone: str, language: str, *, seconds: bool = True) -> str:
    if at is None:
        return "–"
    tz = _zone(zone)
    return _babel_datetime(at, "HH:mm:ss" if seconds else "HH:mm", tzinfo=tz, locale=_locale(language))


def format_day(value: date | datetime | None, zone: str, language: str) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        value = value.astimezone(_zone(zone)).date()
    return _babel_date(value, "medium", locale=_locale(language))


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined; translated where it is shown."""
    return message


__all__ = [
    "DOMAIN_LANGUAGES",
    "LANGUAGE_NAMES",
    "N_",
    "Texts",
    "format_clock",
    "format_day",
    "format_duration",
    "format_moment",
    "pick",
    "pick_first",
    "po_path",
    "translations",
]
