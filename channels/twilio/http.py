"""The HTTP client we give the Twilio SDK: ``twilio.http.HttpClient`` over httpx.

The SDK builds every URL on ``https://api.twilio.com``; this client sends it to the
account's base URL instead (Twilio's API, a regional edge, or the local fake), so the SDK's
own code (parameter names, serialisation, error parsing) is what talks to the fake.

It never retries: a call that is created twice rings a duty officer twice. What happened
on the wire decides what the engine may do next:

* nothing was sent (connection refused, DNS, connect timeout): ``TransportError(sent=False)``,
  the engine may try the next provider;
* the request went out but no answer came (read timeout, connection dropped):
  ``TransportError(sent=True)``: Twilio may have created the call, so it is never resent.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx
from twilio.http import HttpClient
from twilio.http.response import Response

from channels.twilio.errors import TransportError

__all__ = ["TransportError", "TwilioHttp"]

log = logging.getLogger(__name__)

# Raised before a byte of the request reached the server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol,
             httpx.LocalProtocolError, httpx.ProxyError)


class TwilioHttp(HttpClient):  # type: ignore[misc]  # the SDK is untyped
    """``client`` is injected by tests and the demo (an in-process ASGI transport, a
    ``MockTransport``); otherwise one pooled httpx client without retries is made."""

    def __init__(self, base_url: str, *, timeout: float, client: httpx.Client | None = None) -> None:
        super().__init__(logging.getLogger("twilio.http_client"), False, timeout)
        self.base_url = base_url.rstrip("/")
        self._owned = client is None
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False,
                                              transport=httpx.HTTPTransport(retries=0))

    def rebase(self, url: str) -> str:
        """The SDK's ``https://api.twilio.com/2010-04-01/...`` on our base URL."""
        parts = urlsplit(url)
        if not (parts.hostname or "").endswith("twilio.com"):
            return url
        return self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        method: str,
        uri: str,
        params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        url = self.rebase(uri)
        body: Any = dict(data) if data and method.upper() in ("POST", "PUT") else None
        try:
            answer = self.client.request(
                method.upper(), url, params=_query(params), data=body, headers=dict(headers or {}), auth=auth,
                timeout=timeout or self.timeout, follow_redirects=allow_redirects,
            )
        except _NOT_SENT as exc:
            raise TransportError(f"{type(exc).__name__} reaching {_where(url)}: {exc}", sent=False) from exc
        except httpx.TransportError as exc:  # timeouts after sending, dropped connections
            raise TransportError(f"{type(exc).__name__} waiting for {_where(url)}: {exc}", sent=True) from exc
        return Response(answer.status_code, answer.text, answer.headers)

    def close(self) -> None:
        if self._owned:
            self.client.close()


def _query(params: Mapping[str, object] | None) -> dict[str, Any] | None:
    if not params:
        return None
    return {k: v for k, v in params.items() if v is not None}


def _where(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
