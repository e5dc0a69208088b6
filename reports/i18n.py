"""Reports in the reader's language: the ``staff`` gettext catalogue and Babel formatting.

Every word a report shows goes through ``ReportTexts``: labels and sentences (``t("...")``),
the domain's words (``t.name("outcome", "acked_late")``), organisation names and playbook
titles per language, the timeline's details and the action points' advice, each a whole
sentence per case so French, Dutch and German grammar stays right.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from commtest.errors import CommtestError
from commtest.i18n import DOMAIN_LANGUAGES, Texts, format_clock
from commtest.vocabulary import name_of

LANGUAGES = DOMAIN_LANGUAGES["staff"]


class UnknownLanguage(CommtestError):
    exit_code = 2


class ReportTexts(Texts):
    """gettext (staff catalogue) and formatting for one report language and display zone."""

    def __init__(self, lang: str, timezone: str = "Europe/Brussels") -> None:
        if lang not in LANGUAGES:
            raise UnknownLanguage(f"--lang {lang}: no report texts in that language; use one of {', '.join(LANGUAGES)}")
        super().__init__("staff", lang, timezone)

    # -- the domain's words -----------------------------------------------------------
    def name(self, what: str, value: str | None) -> str:
        return name_of(what, value, self)

    def localised(self, default: str, values: Mapping[str, str] | None) -> str:
        """A name or title given per language (``{fr: ...}``), else as written."""
        values = values or {}
        return values.get(self.language) or default

    def time(self, at: datetime | None, ref: datetime | None = None) -> str:
        """Compact for wide tables: ``17:18:43`` on the day of ``ref`` (the run's start), else
        the day and the time. The zone is stated once in the report header."""
        if at is None:
            return "–"
        zone = ZoneInfo(self.timezone)
        if ref is not None and at.astimezone(zone).date() == ref.astimezone(zone).date():
            return format_clock(at, self.timezone, self.language)
        return f"{self.day(at)} {format_clock(at, self.timezone, self.language)}"

    def labelled(self, label: str, value: str) -> str:
        """``label: value`` with the language's typography (French puts a space before the colon)."""
        t = self
        return t("%(label)s: %(value)s", label=label, value=value)

    def verdict(self, verdict: str, simulated: bool = False) -> str:
        t = self
        word = self.name("verdict", verdict)
        return t("%(verdict)s — SIMULATED, not evidence", verdict=word) if simulated else word

    # -- sentences ----------------------------------------------------------------------
    def event_detail(self, kind: str, params: Mapping[str, Any]) -> str:
        """The timeline's detail of one event, as a sentence in the reader's language."""
        t = self
        p = dict(params)
        # A step is named by its channel (the timeline's own column), never by its id: "email"
        # is a word of the playbook's author, not of the reader.
        if kind == "ping.planned":
            return t("attempt %(attempt)s", attempt=p.get("attempt", "?"))
        if kind == "ping.sent":
            text = t("through %(provider)s", provider=p.get("provider") or "?")
            return text + (" — " + t("SIMULATED, not evidence") if p.get("simulated") else "")
        if kind == "ping.delivered":
            return self.name("delivery", p.get("status"))
        if kind in ("ping.acked", "ping.answer_after_close"):
            text = self.name("method", p.get("method"))
            if p.get("by"):
                text = t("%(method)s, by %(who)s", method=text, who=p["by"])
            if p.get("late"):
                text += " — " + t("after the deadline")
            if p.get("suspicious"):
                text += " — " + t("possibly automated (within seconds of delivery)")
            return text
        if kind == "ping.retry":
            return t("attempt %(attempt)s planned after: %(reason)s", attempt=p.get("next_attempt", "?"),
                        reason=self.name("outcome", p.get("reason")))
        if kind == "ping.escalated":
            channel, contact = self.name("channel", p.get("to_channel")), p.get("to_contact_point", "?")
            return t("next channel: %(channel)s, for %(contact)s", channel=channel, contact=contact)
        if kind == "ping.settled" and p.get("method"):
            return self.name("method", p.get("method"))
        if kind == "run.gap":
            return t("%(contact)s has nothing to ping on this channel", contact=p.get("contact_point") or
                        p.get("field") or "?")
        if kind == "run.aborted":
            return t("by %(who)s: %(reason)s", who=p.get("by", "?"), reason=p.get("reason") or "–")
        if kind == "run.refused":
            return ", ".join(self.name("channel", k) for k in p.get("kinds", []))
        if kind == "endpoint.status":
            return self.name("endpoint_status", p.get("status"))
        return ""

    def advice(self, kind: str, outcome: str = "", detail: str = "", *, template: str = "", channel: str = "") -> str:
        """What to do about an action point, as a sentence. A template that failed is named by
        its name (an identifier in the playbook) and its step by its channel, in the reader's words."""
        t = self
        what = self.name("outcome", outcome) if outcome else ""
        sentences = {
            "fix_template": lambda: t(
                "The message for this contact point could not be prepared from template %(template)s (the %(channel)s "
                "step of the playbook): %(error)s. Fix the template in the playbook; this is not the centre's fault.",
                template=template or "?", channel=self.name("channel", channel), error=detail or "–"),
            "failed_check": lambda: t("Not answered (%(outcome)s): check with the centre that this endpoint reaches "
                                         "its duty desk at any hour, and correct the directory if it does not.",
                                         outcome=what),
            "fix_endpoint": lambda: t("The endpoint is wrong (%(outcome)s): ask the centre for the right one and "
                                         "correct the directory before the next test.", outcome=what),
            "unblock_number": lambda: t("The number blocked our SMS (it replied STOP): ask the centre to send START "
                                        "from it, or to give another number."),
            "check_endpoint": lambda: t("Marked %(status)s after this test: confirm it with the centre.",
                                           status=self.name("endpoint_status", outcome)),
            "voicemail": lambda: t("An answering machine took the call: ask the centre to route test calls to the "
                                      "24/7 desk, or give a number that a person answers."),
            "possible_scanner": lambda: t("Acknowledged within seconds of delivery: possibly a mail security "
                                             "scanner, not a person. Ask the centre who confirmed."),
            "no_contact_point": lambda: t("Nothing to ping here (%(reason)s): add a contact point or an endpoint "
                                             "to the directory.", reason=detail or "–"),
            "not_tested": lambda: t("Not tested because our side failed (%(outcome)s): look at the provider's "
                                       "settings and the log; not the centre's fault.", outcome=what),
            "failed_before": lambda: t("Failed in run %(run)s too: a repeated failure, to settle with the centre.",
                                          run=detail),
            "stale_endpoint": lambda: (
                t("Not proven reachable since %(since)s: include it in the next test or confirm it with the centre.",
                  since=self.day(_parse(detail))) if detail else
                t("Never proven reachable: include it in the next test or confirm it with the centre.")),
            "late_answer": lambda: (
                t("Answered after %(took)s against a target of %(target)s: agree with the centre how its desk can "
                  "answer sooner.", took=self.duration(_ms(detail, 0)), target=self.duration(_ms(detail, 1)))
                if _ms(detail, 1) else
                t("Answered, but later than the target: agree with the centre how its desk can answer sooner.")),
            "repeated_failure": lambda: t("Failed %(n)s times in a row (%(outcome)s): settle it with the centre.",
                                             n=detail, outcome=what),
        }
        make = sentences.get(kind)
        return make() if make else what


def _ms(detail: str, index: int) -> int | None:
    try:
        return int(detail.split("/")[index])
    except (ValueError, IndexError):
        return None


def _parse(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


# Kept for the few callers that only need formatting (the monthly e-mail).
Translator = ReportTexts

__all__ = ["LANGUAGES", "ReportTexts", "Translator", "UnknownLanguage"]
