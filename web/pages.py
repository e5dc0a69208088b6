"""Rendering of the ack pages (Jinja2, autoescaped) in the officer's language."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from web.i18n import LANGUAGE_NAMES, LANGUAGES, texts

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
TEMPLATES.env.autoescape = True


def page(request: Request, template: str, lang: str, status: int = 200, *, title: str | None = None,
         switch_base: str | None = None, **context: Any) -> HTMLResponse:
    t = texts(lang)
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"lang": lang, "t": t, "title": title or t["title"], "languages": [(c, LANGUAGE_NAMES[c]) for c in LANGUAGES],
         "switch_base": switch_base, **context},
        status_code=status,
    )


def message(request: Request, lang: str, key: str, status: int, *, switch_base: str | None = None,
            again: str | None = None, **fmt: str) -> HTMLResponse:
    """A status page: ``key`` names ``<key>_title`` and ``<key>_text`` in the catalogue."""
    t = texts(lang)
    return page(request, "message.html", lang, status, title=t[f"{key}_title"], switch_base=switch_base,
                text=t[f"{key}_text"].format(**fmt), again=again)
