"""Every text for people is in the gettext catalogues, translated into every language of its
audience (commtest.i18n), and formatted the same way everywhere."""
from __future__ import annotations

import importlib.util
from datetime import datetime
from pathlib import Path

import pytest

from commtest.clock import UTC
from commtest.i18n import DOMAIN_LANGUAGES, Texts, format_duration, format_moment

REPO = Path(__file__).resolve().parents[2]


def _catalogue_tool():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("catalogues", REPO / "scripts" / "catalogues.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("domain", sorted(DOMAIN_LANGUAGES))
def test_every_message_of_a_catalogue_is_translated_in_each_of_its_languages(domain: str) -> None:
    problems = [p for p in _catalogue_tool().problems() if f"/{domain}.po" in p]
    assert problems == [], "run `make catalogues`, then translate:\n" + "\n".join(problems)


@pytest.mark.parametrize("ms, lang, text", [
    (196_000, "en", "3 min 16 s"), (3_720_000, "en", "1 h 02 min"), (45_000, "en", "45 s"),
    (196_000, "de", "3 Min. 16 Sek."), (3_720_000, "nl", "1 u 02 min"), (196_000, "fr", "3 min 16 s"),
])
def test_a_duration_reads_the_same_way_everywhere_in_the_readers_language(ms: int, lang: str, text: str) -> None:
    assert format_duration(ms, lang) == text


def test_a_moment_is_day_month_year_with_a_24_hour_clock_never_us_style() -> None:
    at = datetime(2026, 9, 15, 20, 26, 59, tzinfo=UTC)
    assert format_moment(at, "Europe/Brussels", "en") == "15 Sept 2026 22:26 CEST"
    assert format_moment(at, "Europe/Brussels", "fr") == "15 sept. 2026 22:26 CEST"
    assert "PM" not in format_moment(at, "Europe/Brussels", "en")


def test_a_language_a_catalogue_lacks_falls_back_to_english_not_to_a_key() -> None:
    t = Texts("staff", "lb")  # Luxembourgish reports do not exist: English, the source text
    assert t.language == "en" and t("Organisation") == "Organisation"


def test_every_module_and_template_with_texts_for_people_is_extracted_into_a_catalogue() -> None:
    """A module missing from every ``babel-*.cfg`` mapping keeps its texts out of the
    catalogues, so the test above cannot see them untranslated (web/console.py's sign-in
    and monthly-report messages were English in every language)."""
    import re

    from babel.util import pathmatch

    mapped: dict[str, list[str]] = {"python": [], "jinja2": []}
    for cfg in REPO.glob("babel-*.cfg"):
        for method, pattern in re.findall(r"^\[(python|jinja2): (.+)\]$", cfg.read_text(encoding="utf-8"), re.MULTILINE):
            mapped[method].append(pattern)
    calls = {"python": re.compile(r'(?<![\w.])(N_|_|t|gettext|ngettext)\(\s*"'),
             "jinja2": re.compile(r"(?<![\w.])(_|gettext|ngettext)\(")}
    unmapped = []
    for top in ("commtest", "web", "reports", "scheduler", "channels", "playbooks"):
        for path in sorted((REPO / top).rglob("*")):
            method = {".py": "python", ".html": "jinja2", ".j2": "jinja2"}.get(path.suffix)
            if method is None or not calls[method].search(path.read_text(encoding="utf-8")):
                continue
            name = path.relative_to(REPO).as_posix()
            if not any(pathmatch(pattern, name) for pattern in mapped[method]):
                unmapped.append(name)
    assert unmapped == [], "add these to a babel-*.cfg mapping, then `make catalogues`: " + ", ".join(unmapped)


def test_every_catalogue_file_reads_without_a_problem() -> None:
    """A merge that drops a ``msgstr`` line or a blank line leaves a file Babel reads with a
    warning and a message lost; reading strictly fails on it."""
    from pathlib import Path

    from babel.messages.pofile import read_po

    files = sorted((Path(__file__).resolve().parents[2] / "commtest" / "locale").glob("*/LC_MESSAGES/*.po"))
    assert files
    for path in files:
        with path.open("rb") as f:
            read_po(f, abort_invalid=True)  # raises PoFileError, naming the line
