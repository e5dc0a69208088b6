"""Serve a fake provider, written as ``httpx.Request -> httpx.Response``, as an ASGI app.

The fakes (fake Jitsi, fake BigBlueButton, fake CAP partner) keep their wire logic in one
handler: tests put it behind ``httpx.MockTransport`` (in process, no socket), the demo
serves it on a loopback port with uvicorn through ``asgi_app``. Either way the real client
code of a provider talks to it unchanged.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httpx

Handler = Callable[[httpx.Request], httpx.Response]
Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

MAX_BODY = 1_048_576


def asgi_app(handler: Handler) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > MAX_BODY:
                break
            if not message.get("more_body"):
                break
        query = scope.get("query_string", b"").decode("latin-1")
        host = next((v.decode() for k, v in scope.get("headers", []) if k == b"host"), "127.0.0.1")
        url = f"{scope.get('scheme', 'http')}://{host}{scope['path']}" + (f"?{query}" if query else "")
        request = httpx.Request(scope["method"], url, headers=[(k.decode("latin-1"), v.decode("latin-1"))
                                                               for k, v in scope.get("headers", [])],
                                content=bytes(body))
        response = handler(request)
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()
                                if k.lower() != "content-length"] + [(b"content-length", str(len(response.content)).encode())]})
        await send({"type": "http.response.body", "body": response.content})

    return app


def raw_query(request: httpx.Request) -> str:
    """The query string exactly as sent (a checksum covers these bytes)."""
    return request.url.query.decode("ascii") if isinstance(request.url.query, bytes) else str(request.url.query)
