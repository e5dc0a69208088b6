"""What a duty officer's browser does with an acknowledgement link: GET the page, read
its form (action, CSRF field), fill in the name, POST it. Used by the demo's simulated
officers and by tests; there is no shortcut around the page."""
from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

import httpx


class _FormReader(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and not self._done:
            self._in_form = True
            self.action = a.get("action", "")
            self.method = a.get("method", "get").lower()
        elif tag == "input" and self._in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form = False
            self._done = True


def acknowledge_by_link(client: httpx.Client, ack_url: str, name: str) -> httpx.Response:
    """GET ``ack_url``; when it shows the confirm form, POST it with ``name``. Returns the
    last response (the confirmation page, or the GET's status page when there is no form)."""
    page = client.get(ack_url)
    reader = _FormReader()
    reader.feed(page.text)
    if reader.action is None or reader.method != "post":
        return page
    fields = dict(reader.fields)
    fields["name"] = name
    target = urljoin(str(page.url), reader.action or str(page.url))
    return client.post(target, data=fields)
