"""The acknowledgement form and its thank-you page: rendered by Jinja2 once per language and
kind of page, then filled per link.

These two pages are the same for every link of one language but for a few values (names,
moments, the CSRF field, the link itself). Rendering them in full took about 150 µs, the
largest part of an acknowledgement. So the templates (``ack.html``, ``done.html``: still the
only source of the pages) are rendered once per (language, channel, closed, called off) or
(language, late) with a marker in place of each such value; a page is then the frame's text
with the link's values escaped between the pieces, exactly as autoescaping would have escaped
them. ``tests/web/test_ack_frames.py`` checks that a filled frame is byte for byte the full
render, hostile values included. A template that transforms one of these values (a filter,
a test on it) cannot be framed: building its frame fails loudly, and that test says so.
"""
from __future__ import annotations

import functools
import operator
import re
from dataclasses import dataclass
from typing import Any

from starlette.responses import HTMLResponse

from commtest.vocabulary import name_of
from web.pages import TEMPLATES, page_context, texts

# Private-use characters: never in a template or a translation, never escaped by autoescaping.
_OPEN, _CLOSE = "\ue000", "\ue001"
_SPLIT = re.compile(f"{_OPEN}slot(\\d+){_CLOSE}")  # letters: a filter that changes them shows
FORM_FIELDS = ("organisation", "contact", "sent", "deadline", "csrf", "base")
DONE_FIELDS = ("when", "duration")


def _mark(i: int) -> str:
    return f"{_OPEN}slot{i}{_CLOSE}"


@dataclass(frozen=True)
class Frame:
    """A page's text as ``pieces[0] value pieces[1] value ...``: ``slots[i]`` names the value
    that goes between ``pieces[i]`` and ``pieces[i + 1]``."""

    pieces: tuple[str, ...]
    slots: tuple[int, ...]

    def __post_init__(self) -> None:
        # The page as UTF-8 with a %s per value: filled by one C-level formatting of the values
        # each escaped and encoded once (piece by piece it took two dozen appends, then the
        # encoding of the whole page).
        template = "%s".join(p.replace("%", "%%") for p in self.pieces).encode()
        object.__setattr__(self, "_template", template)
        slots = self.slots
        order = operator.itemgetter(*slots) if len(slots) > 1 else (lambda escaped: tuple(escaped[s] for s in slots))
        object.__setattr__(self, "_order", order)  # the values in the order the page shows them, as a tuple

    @classmethod
    def of(cls, html: str, fields: tuple[str, ...]) -> Frame:
        parts = _SPLIT.split(html)
        slots = tuple(int(s) for s in parts[1::2])
        pieces = tuple(parts[0::2])
        altered = any(_OPEN in p or _CLOSE in p for p in pieces)  # a value the template changed
        if altered or set(slots) != set(range(len(fields))):
            missing = [f for i, f in enumerate(fields) if i not in slots]
            raise RuntimeError(f"the template does not show {missing or 'every value'} as given: it cannot be framed")
        return cls(pieces, slots)

    def fill(self, values: tuple[str, ...]) -> bytes:
        escaped = [_escape(v).encode() for v in values]  # each value once (the link itself shows ~6 times)
        return self._template % self._order(escaped)  # type: ignore[attr-defined,no-any-return]


def _escape(value: str) -> str:
    """What markupsafe's ``escape`` (Jinja2's autoescaping) makes of a plain string, without
    building a ``Markup`` object per value (a tenth of filling a frame)."""
    return (value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
            .replace('"', "&#34;"))


class FilledPage(HTMLResponse):
    """A filled frame as a response: Starlette's ``HTMLResponse`` with its headers made directly
    (its own set-up of a response cost a tenth of a page). ``web.app`` sends it as it is."""

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code, self.body, self.background = status_code, body, None
        self.raw_headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"text/html; charset=utf-8")]


class _MarkedInfo:
    """Stands in for ``TokenInfo`` while a form frame is rendered: only what ``ack.html`` shows."""

    contact_name = _mark(FORM_FIELDS.index("contact"))

    def organisation_in(self, _language: str) -> str:
        return _mark(FORM_FIELDS.index("organisation"))

    def __getattr__(self, name: str) -> Any:  # ack.html shows something a frame does not fill
        raise RuntimeError(f"ack.html shows info.{name}: add it to web.ack_frames.FORM_FIELDS")


@functools.lru_cache(maxsize=256)
def form_frame(language: str, channel: str, closed: bool, called_off: bool) -> Frame:
    m = {f: _mark(i) for i, f in enumerate(FORM_FIELDS)}
    t = texts(language)
    html = TEMPLATES.get_template("ack.html").render(page_context(
        language, switch_base=m["base"], info=_MarkedInfo(), channel_name=name_of("channel", channel, t),
        sent=m["sent"], deadline=m["deadline"], csrf=m["csrf"], action=f"{m['base']}?lang={language}",
        closed=closed, called_off=called_off, video=None))
    return Frame.of(html, FORM_FIELDS)


@functools.lru_cache(maxsize=64)
def done_frame(language: str, late: bool) -> Frame:
    m = {f: _mark(i) for i, f in enumerate(DONE_FIELDS)}
    t = texts(language)
    html = TEMPLATES.get_template("done.html").render(page_context(
        language, title=t("Thank you: receipt confirmed"), when=m["when"], duration=m["duration"], late=late))
    return Frame.of(html, DONE_FIELDS)
