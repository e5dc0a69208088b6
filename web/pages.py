"""Rendering of the ack pages (Jinja2, autoescaped) in the officer's language.

Texts come from the ``officer`` gettext catalogue (commtest.i18n); a status page is one of
``MESSAGES``, a title and a sentence, translated where it is shown.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from commtest.i18n import DOMAIN_LANGUAGES, LANGUAGE_NAMES, N_, Texts

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
TEMPLATES.env.autoescape = True
# The templates ship with the package: no stat() of every template on every page.
TEMPLATES.env.auto_reload = False
LANGUAGES = DOMAIN_LANGUAGES["officer"]

# key -> (title, text): the status pages an officer may meet.
MESSAGES: dict[str, tuple[str, str]] = {
    "already": (N_("Already confirmed"), N_("This message was already confirmed at %(when)s. Nothing more to do.")),
    "expired": (N_("Link expired"),
                N_("This link is no longer valid. If the test is still running, reply to the e-mail instead.")),
    "unknown": (N_("Link not recognised"),
                N_("This link is not known. Check that you opened it completely from the e-mail.")),
    "malformed": (N_("Incomplete link"),
                  N_("This link is incomplete or damaged. Open it again from the e-mail, or reply to the e-mail.")),
    "csrf": (N_("Please try again"),
             N_("This page is too old or the form did not come from it. Open the link again and press the button.")),
    "ratelimited": (N_("Too many requests"),
                    N_("Too many requests came from your address. Wait a minute and try again.")),
    "notfound": (N_("Page not found"), N_("There is no page at this address.")),
    "error": (N_("Something went wrong"),
              N_("The confirmation could not be processed. Please try again in a moment, or reply to the e-mail.")),
    "toolarge": (N_("Request too large"), N_("This request is larger than a confirmation can be. Open the link again "
                                             "from the e-mail and press the button.")),
    "closed": (N_("Thank you: the test had already closed"),
               N_("Your answer of %(when)s is recorded, but the test closed at %(closed)s, so it no longer changes "
                  "its result. Nothing more to do.")),
    "called_off": (N_("This test was called off"),
                   N_("The coordinators called this test off at %(closed)s. Your answer is recorded; nothing more "
                      "to do.")),
}


def texts(lang: str) -> Texts:
    return Texts("officer", lang)


def page_context(lang: str, *, title: str | None = None, switch_base: str | None = None,
                 **context: Any) -> dict[str, Any]:
    """What every officer page's template gets: the language, its texts, the title, the language switch."""
    t = texts(lang)
    return {"lang": lang, **t.jinja_globals(), "title": title or t("Confirm receipt"),
            "languages": [(c, LANGUAGE_NAMES[c]) for c in LANGUAGES], "switch_base": switch_base, **context}


def page(request: Request, template: str, lang: str, status: int = 200, *, title: str | None = None,
         switch_base: str | None = None, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request, template, page_context(lang, title=title, switch_base=switch_base, **context), status_code=status)


def message(request: Request, lang: str, key: str, status: int, *, switch_base: str | None = None,
            again: str | None = None, **fmt: str) -> HTMLResponse:
    """A status page: ``key`` names one of ``MESSAGES``."""
    t = texts(lang)
    title, text = MESSAGES[key]
    return page(request, "message.html", lang, status, title=t(title), switch_base=switch_base,
                text=t(text, **fmt) if fmt else t(text), again=again)
