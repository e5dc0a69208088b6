"""``POST /hooks/jitsi/events/{group}/{event}``: Prosody's event_sync webhooks.

Set event_sync's ``api_prefix`` to ``{public_base_url}/hooks/jitsi`` and its ``api_headers``
to ``{["Authorization"] = "Bearer <COMMTEST_JITSI_WEBHOOK_TOKEN>"}``: a shared secret, compared
in constant time, secret only over TLS. A proxy that signs may send instead
``X-Commtest-Signature: sha256=<HMAC-SHA256 of the body with that secret>``; when that header
is there it must be right, whatever the bearer says. Anything else gets 403 and changes nothing.
A join by one of our identities acknowledges its ping (method ``video-join``), at the
``joined_at`` the module reports; anyone else's is ignored.
event_sync retries on a 5xx, so an event is answered 2xx only once its reports are recorded,
and a retried event (same room, occupant and ``joined_at``) is dropped.
"""
from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from channels.video.jitsi import SIGNATURE_HEADER, event_reports, verify_bearer, verify_signature
from commtest.clock import Clock
from commtest.settings import Settings
from scheduler.reports_in import apply_reports
from web.hooks.bounded import BodyTooLarge, read_bounded

log = logging.getLogger(__name__)

ACTOR = "provider:jitsi"
MAX_BODY = 256 * 1024  # a room-destroyed event lists every occupant: still small
_SEEN_MAX = 10_000


class _SeenEvents:
    """Event ids already recorded by this process (the database keeps the first join anyway)."""

    def __init__(self) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def new(self, ids: list[str]) -> set[str]:
        with self._lock:
            return {i for i in ids if i not in self._ids}

    def add(self, ids: set[str]) -> None:
        with self._lock:
            for i in ids:
                self._ids[i] = None
            while len(self._ids) > _SEEN_MAX:
                self._ids.popitem(last=False)


def _refused(request: Request, how: str) -> JSONResponse:
    log.warning("jitsi webhook %s refused (from %s)", how, request.client.host if request.client else "?")
    return JSONResponse({"error": "unsigned or wrongly signed"}, status_code=403)


def jitsi_router(settings: Settings, engine: Engine, clock: Clock) -> APIRouter:
    router = APIRouter()
    seen = _SeenEvents()

    @router.post("/hooks/jitsi/events/{group}/{event}")
    async def event_sync(request: Request, group: str, event: str) -> JSONResponse:
        token = settings.jitsi_webhook_token
        secret = settings.jitsi_app_secret
        if token is None or secret is None:
            return JSONResponse({"error": "the Jitsi webhook is not configured here"}, status_code=404)
        signature = request.headers.get(SIGNATURE_HEADER)
        if signature is None and not verify_bearer(request.headers.get("authorization"), token.get_secret_value()):
            return _refused(request, "without the right bearer token")
        try:
            body = await read_bounded(request, MAX_BODY)
        except BodyTooLarge:
            return JSONResponse({"error": f"larger than {MAX_BODY} bytes"}, status_code=413)
        if signature is not None and not verify_signature(token.get_secret_value(), body, signature):
            return _refused(request, f"with a wrong {SIGNATURE_HEADER}")
        try:
            reports = event_reports(json.loads(body), secret.get_secret_value(), clock.now())
        except ValueError as exc:  # JSON or not an event_sync event
            return JSONResponse({"error": str(exc)[:200]}, status_code=400)
        fresh = seen.new([r.extra["event_id"] for r in reports])
        todo = [r for r in reports if r.extra["event_id"] in fresh]
        if todo:
            results = await run_in_threadpool(apply_reports, engine, settings, clock, todo, ACTOR)
            seen.add(fresh)
            recorded = sum(1 for r in results if r is not None and r.status == "acked")
        else:
            recorded = 0
        return JSONResponse({"joins": len(reports), "new": len(todo), "recorded": recorded})

    return router
