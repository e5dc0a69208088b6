"""Language choice for the web pages, and a bridge for the console's older key-based texts.

Every text comes from the gettext catalogues (commtest.i18n): the ack pages from ``officer``
(nl, fr, de, lb, en), the console from ``staff`` (nl, fr, de, en). ``console_texts`` maps the
console's keys to their English message ids and translates them; new pages call ``Texts``
directly.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from commtest.i18n import DOMAIN_LANGUAGES, LANGUAGE_NAMES, N_, Texts, format_duration as _format_duration, format_moment

LANGUAGES = DOMAIN_LANGUAGES["officer"]
CONSOLE_LANGUAGES = DOMAIN_LANGUAGES["staff"]
__all__ = ["CONSOLE_LANGUAGES", "LANGUAGES", "LANGUAGE_NAMES", "console_texts", "format_duration", "format_when",
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


# Shared with the ack pages, whose catalogue (officer) has them: not marked for the staff one.
_SHARED: dict[str, str] = {
    'ratelimited_title': 'Too many requests',
    'ratelimited_text': 'Too many requests came from your address. Wait a minute and try again.',
    'notfound_title': 'Page not found',
    'notfound_text': 'There is no page at this address.',
    'error_title': 'Something went wrong',
    'error_text': 'The confirmation could not be processed. Please try again in a moment, or reply to the e-mail.',
    'footer': 'commtest: communication tests between crisis centres',
}

_CONSOLE: dict[str, str] = {
    'console': N_('Console'),
    'login_title': N_('Sign in to the console'),
    'username': N_('User name'),
    'password': N_('Password'),
    'login_button': N_('Sign in'),
    'login_failed': N_('Wrong user name or password, or the account is deactivated.'),
    'logout': N_('Sign out'),
    'signed_in_as': N_('Signed in as %(user)s (%(role)s)'),
    'monthly_title': N_('Monthly reports'),
    'month': N_('Month'),
    'status': N_('Status'),
    'status_draft': N_('Draft'),
    'status_signed': N_('Signed'),
    'signed_by': N_('Signed by'),
    'signed_at': N_('Signed at'),
    'generated_at': N_('Generated'),
    'no_reports': N_('No monthly report yet.'),
    'open': N_('Open'),
    'generate_title': N_('Generate a draft'),
    'generate_label': N_('Month (YYYY-MM)'),
    'generate_button': N_('Generate'),
    'bad_month': N_('“%(month)s” is not a month: write YYYY-MM, e.g. 2026-03.'),
    'report_title': N_('Monthly report %(month)s'),
    'draft_note': N_('Draft generated at %(when)s. It is recomputed until a reviewer signs it off.'),
    'signed_note': N_('Signed by %(by)s at %(when)s.'),
    'comment': N_('Comment'),
    'sign_title': N_('Sign off'),
    'sign_intro': N_('Signing freezes these figures: they will not change any more, and your name and the time are recorded.'),
    'comment_label': N_('Comment (required)'),
    'sign_button': N_('Sign off this report'),
    'comment_required': N_('Write a comment before signing. Nothing was recorded.'),
    'printable': N_('Printable version'),
    'back': N_('Back to the monthly reports'),
    'noreport_title': N_('No report for this month'),
    'noreport_text': N_('There is no report for %(month)s yet. A coordinator, reviewer or admin can generate a draft from the list.'),
    'forbidden_title': N_('Not allowed'),
    'forbidden_text': N_('Your role (%(role)s) does not allow this: only %(roles)s may %(action)s. Nothing was recorded.'),
    'action_sign': N_('sign a monthly report'),
    'action_generate': N_('generate a monthly report'),
    'signed_already_title': N_('Already signed'),
    'signed_already_text': N_('The report of %(month)s was signed by %(by)s at %(when)s. A signed report is frozen and cannot be signed again. Nothing was recorded.'),
    'changed_title': N_('The figures have changed'),
    'changed_text': N_('The figures of %(month)s changed since you opened the page (new events arrived). Read them again before signing. Nothing was recorded.'),
    'console_csrf_title': N_('Please try again'),
    'console_csrf_text': N_('This form is too old or did not come from the console. Open the page again and submit it from there. Nothing was recorded.'),
    'login_required_title': N_('Sign-in required'),
    'login_required_text': N_('Sign in to the console first. Nothing was recorded.'),
    'sign_in_link': N_('Go to the sign-in page'),
    'role_viewer': N_('viewer'),
    'role_coordinator': N_('coordinator'),
    'role_reviewer': N_('reviewer'),
    'role_admin': N_('admin'),
    'or': N_('or'),
}


def _braces(text: str) -> str:
    # The console's templates fill ``{name}`` placeholders with str.format.
    return re.sub(r"%\((\w+)\)s", r"{\1}", text)


def console_texts(language: str) -> dict[str, str]:
    """The console's strings by key, translated (with the few shared with the ack pages)."""
    staff, officer = Texts("staff", language), Texts("officer", language)
    return {**{k: _braces(officer(v)) for k, v in _SHARED.items()}, **{k: _braces(staff(v)) for k, v in _CONSOLE.items()}}
