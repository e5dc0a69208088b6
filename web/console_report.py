"""The monthly report inside a console page: the same HTML as ``commtest report monthly --format html``.

The report is self-contained (a ``<style>`` in its head, one per pygal chart), but the app's
Content-Security-Policy allows only our stylesheet. Rather than open ``'unsafe-inline'``, the
pages that show a report allow exactly its style blocks by their sha256. pygal's inline
configuration scripts are dropped: nothing would run them (no script is allowed) and the
console works without JavaScript.
"""
from __future__ import annotations

import base64
import hashlib
import html
import re
from dataclasses import dataclass

from markupsafe import Markup

from reports.monthly import MonthlyView
from reports.render import render_html

_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.S)
_HEAD_STYLE = re.compile(r"<head>.*?(<style[^>]*>.*?</style>).*?</head>", re.S)
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)


@dataclass(frozen=True)
class EmbeddedReport:
    document: str  # the whole report, for the printable page
    head_style: Markup  # the report's stylesheet, for the console page's head
    body: Markup  # the report's body, scripts removed
    csp: str  # the policy allowing exactly these style blocks


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def style_policy(document: str) -> str:
    """The app's policy with each of the document's style blocks allowed by hash.

    A ``<style>`` in the HTML head is raw text; one inside ``<svg>`` is parsed as XML-ish
    foreign content, so the browser hashes it with ``&gt;`` already decoded. Both spellings
    are listed: an unused hash allows nothing.
    """
    from web.app import SECURITY_HEADERS  # here: web.app imports the console at load time

    hashes: list[str] = []
    for block in _STYLE.findall(document):
        for variant in (block, html.unescape(block)):
            h = _hash(variant)
            if h not in hashes:
                hashes.append(h)
    return SECURITY_HEADERS["Content-Security-Policy"].replace("style-src 'self'", "style-src 'self' " + " ".join(hashes))


def embed_monthly(view: MonthlyView, lang: str, timezone: str) -> EmbeddedReport:
    document = _SCRIPT.sub("", render_html(view, lang, timezone))
    head = _HEAD_STYLE.search(document)
    body = _BODY.search(document)
    return EmbeddedReport(
        document=document,
        # Markup: our own rendering, already autoescaped by the reports' Jinja environment.
        head_style=Markup(head.group(1) if head else ""),
        body=Markup(body.group(1) if body else document),
        csp=style_policy(document),
    )
