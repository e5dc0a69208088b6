"""The FastAPI app: acknowledgement pages, the coordinator console, the JSON API
(``/api/v1``), the calendar feeds, ``/metrics`` and ``/healthz``.

Composed by the CLI (``commtest daemon``); nothing else imports ``web``. Every response
carries the security headers; ``/ack`` and the console login are rate limited per source
address. The source address is the connecting one; ``X-Forwarded-For`` is believed only
from the proxies ``COMMTEST_TRUSTED_PROXIES`` names (none by default: ``web.client_address``),
and uvicorn's own proxy-header handling is switched off by the daemon.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Awaitable, Callable

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.engine import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from commtest.clock import Clock
from commtest.settings import Settings
from web.ack import AckContext, AckHandlers, ack_handlers
from web.ack_frames import FilledPage
from web.api import PREFIX as API_PREFIX, api_app
from web.metrics import metrics_router
from web.officer_calendar import calendar_router
from web.officer_correction import correction_router
from web.console import console_router
from web.hooks.cap import cap_router
from web.hooks.jitsi import jitsi_router
from web.officer_video import video_ack_router
from web.client_address import client_address
from web.csrf import CsrfSigner
from web.hooks.twilio import twilio_router
from web.i18n import pick_language
from web.pages import message
from web.ratelimit import SlidingWindowLimiter

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    # No script at all; styles only from our own stylesheet; forms post only to us.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",  # the token is in the URL: never leak it to another site
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


_HEADER_BYTES = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()]


# Links whose path is a secret (an acknowledgement link, a calendar feed): logged without it.
_SECRET_IN_PATH = re.compile(r"^/(ack|calendar)/[^/]+")


def loggable_path(path: str) -> str:
    """``path`` as it may go into a log: ``/ack/…/video``, never the token itself."""
    return _SECRET_IN_PATH.sub(lambda m: f"/{m.group(1)}/…", path)


# A well-formed acknowledgement link (web.ack: what secrets.token_urlsafe(32) makes), nothing after it.
_ACK_LINK = re.compile(r"/ack/([A-Za-z0-9_-]{43})")


class GuardMiddleware:
    """Every response gets the security headers; /ack is rate limited per client address.

    A plain ASGI middleware, the outermost one (``_App``): Starlette's ``@app.middleware("http")``
    wraps every request and response in extra tasks and streams, which cost more than an
    acknowledgement itself. For the same reason a well-formed link's GET and POST go straight to
    their handlers (``ack_handlers``): FastAPI's routing, its middlewares and its parameter handling
    cost about a third of the page. Anything else under /ack (a malformed link, HEAD, the video and
    correction pages) takes the app's routes as before."""

    def __init__(self, app: ASGIApp, *, settings: Settings, limiter: SlidingWindowLimiter,
                 lang_of: Callable[[Request], str], ack: AckHandlers | None = None) -> None:
        self.app, self.settings, self.limiter, self.lang_of, self.ack = app, settings, limiter, lang_of, ack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/ack"):
            request = Request(scope, receive)
            if not self.limiter.allow(client_address(request, self.settings)):
                response = message(request, self.lang_of(request), "ratelimited", 429)
                response.headers["Retry-After"] = "60"
                await response(scope, receive, _with_headers(send))
                return
            link = _ACK_LINK.fullmatch(scope["path"])
            if link and self.ack is not None and scope["method"] in ("GET", "POST"):
                await self._ack(request, link.group(1), scope, receive, send)
                return
        await self.app(scope, receive, _with_headers(send))

    async def _ack(self, request: Request, token: str, scope: Scope, receive: Receive, send: Send) -> None:
        assert self.ack is not None
        handler = self.ack.show if scope["method"] == "GET" else self.ack.confirm
        try:
            # Most links carry no query: Starlette's query parsing only when there is one.
            lang = request.query_params.get("lang") if scope.get("query_string") else None
            response: Response = await handler(request, token, lang)
        except Exception:  # the app's own handler of unexpected errors would do the same
            log.exception("web: unhandled error on %s %s", scope["method"], loggable_path(scope["path"]))
            response = message(request, self.lang_of(request), "error", 500)
        # The page is whole in memory and has no background task: sent as is, with the headers.
        if isinstance(response, FilledPage):  # its own headers are its length and type only
            headers = response.raw_headers + _HEADER_BYTES
        else:
            present = {k for k, _ in response.raw_headers}
            headers = response.raw_headers + [h for h in _HEADER_BYTES if h[0] not in present]
        await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})


def _with_headers(send: Send) -> Send:
    """``send``, adding each security header the response does not set itself."""
    async def sender(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            message["headers"] = headers + [h for h in _HEADER_BYTES if h[0] not in present]
        await send(message)

    return sender


class _App(FastAPI):
    """FastAPI with ``GuardMiddleware`` outside its own error and telemetry middlewares: an
    acknowledgement link is answered before the stack it does not need (the guard handles its
    errors itself, and every other request goes through the whole stack as before)."""

    guard: Callable[[ASGIApp], ASGIApp] | None = None

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return self.guard(stack) if self.guard is not None else stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # An acknowledgement link goes to the guard directly: FastAPI's own entry checks per
        # request whether OpenTelemetry is configured, which cost a tenth of a link's page, and a
        # link's path holds its secret, which must not reach a tracer anyway.
        if scope["type"] == "http" and self.middleware_stack is not None and scope["path"].startswith("/ack/"):
            if self.root_path:
                scope["root_path"] = self.root_path
            scope["app"] = self
            await self.middleware_stack(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings, engine: Engine, clock: Clock) -> FastAPI:
    app = _App(title="commtest", docs_url=None, redoc_url=None, openapi_url=None)
    limiter = SlidingWindowLimiter(settings.ack_rate_limit_per_minute, clock)
    ctx = AckContext(settings, engine, clock, CsrfSigner.from_settings(settings, clock))

    def lang_of(request: Request) -> str:
        return pick_language(request.query_params.get("lang"), None, settings.default_language)

    ack = ack_handlers(ctx)
    app.guard = lambda inner: GuardMiddleware(inner, settings=settings, limiter=limiter, lang_of=lang_of, ack=ack)

    @app.api_route("/healthz", methods=["GET", "HEAD"])  # load balancers probe with HEAD
    def healthz() -> JSONResponse:
        try:
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return JSONResponse({"status": "ok", "database": "ok"})
        except sa.exc.SQLAlchemyError:
            log.exception("health check: database unreachable")
            return JSONResponse({"status": "error", "database": "unreachable"}, status_code=503)

    app.include_router(ack.router)
    app.include_router(correction_router(ctx))
    app.include_router(calendar_router(ctx))
    app.include_router(metrics_router(settings, engine, clock))
    app.mount(API_PREFIX, api_app(settings, engine, clock))
    app.include_router(console_router(settings, engine, clock, ctx.signer))  # same key as the ack CSRF
    app.include_router(jitsi_router(settings, engine, clock))
    app.include_router(cap_router(settings, engine, clock))
    app.include_router(video_ack_router(ctx))
    app.include_router(twilio_router(settings, engine, clock))
    app.mount("/static", StaticFiles(directory=str(Path(__file__).resolve().parent / "static")), name="static")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return message(request, lang_of(request), "notfound", 404)
        if exc.status_code == 405:
            return message(request, lang_of(request), "notfound", 405)
        return message(request, lang_of(request), "error", exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        return message(request, lang_of(request), "malformed", 400)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("web: unhandled error on %s %s", request.method, loggable_path(request.url.path))
        response = message(request, lang_of(request), "error", 500)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    return app
