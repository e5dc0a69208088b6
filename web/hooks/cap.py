"""``POST /hooks/cap/{partner}``: a partner platform's CAP Ack to our test alert.

Checked in this order, each refusal a 4xx that changes nothing: the partner is known (404);
the body is at most ``cap_max_body_bytes`` (413, before reading it all); the HMAC header is
right for that partner's secret (403, before parsing); the XML has no DTD or entity and is
well-formed (400); it is valid CAP 1.2 (422); it is an Ack with status Test whose
``references`` name an alert we sent to this partner (422), known to the database (404).
Then it acknowledges the ping (method ``cap-ack``) at the moment it arrived. An Ack repeated
is answered 200 again and changes nothing. Mutual TLS, when the partner uses it, is checked
by the reverse proxy in front (docs/channels/cap.md).
"""
from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool

from channels.base import ChannelReport
from channels.cap.message import CapRefused, partner_of_identifier, read_cap
from channels.cap.signing import HEADER, verify
from commtest.clock import Clock
from commtest.settings import Settings
from scheduler.reports_in import apply_reports
from web.hooks.bounded import BodyTooLarge, read_bounded

log = logging.getLogger(__name__)

METHOD = "cap-ack"


def cap_router(settings: Settings, engine: Engine, clock: Clock) -> APIRouter:
    router = APIRouter()

    def refuse(status: int, why: str, partner: str) -> JSONResponse:
        log.warning("CAP message from %s refused (%s): %s", partner, status, why)
        return JSONResponse({"error": why[:300]}, status_code=status)

    @router.post("/hooks/cap/{partner}")
    async def ack(request: Request, partner: str) -> JSONResponse:
        secret = settings.cap_secrets.get(partner)
        if partner not in settings.cap_partners or secret is None:
            return refuse(404, "unknown CAP partner", partner[:40])
        try:
            body = await read_bounded(request, settings.cap_max_body_bytes)
        except BodyTooLarge:
            return refuse(413, f"larger than {settings.cap_max_body_bytes} bytes", partner)
        if not verify(secret.get_secret_value(), body, request.headers.get(HEADER)):
            return refuse(403, f"missing or wrong {HEADER}", partner)
        try:
            msg = read_cap(body)
        except CapRefused as exc:
            return refuse(exc.status, exc.message, partner)
        if msg.msg_type != "Ack" or msg.status != "Test":
            return refuse(422, f"expected msgType Ack with status Test, got {msg.msg_type} / {msg.status}", partner)
        ours = [ident for sender, ident, _sent in msg.references
                if sender == settings.cap_sender and partner_of_identifier(ident) == partner]
        if not ours:
            return refuse(422, "its references name no alert that commtest sent to this partner", partner)
        now = clock.now()
        reports = [ChannelReport("acked", now, provider_ref=ident, method=METHOD, by=msg.sender[:200] or partner,
                                 detail=f"CAP Ack {msg.identifier}") for ident in ours]
        results = await run_in_threadpool(apply_reports, engine, settings, clock, reports, f"provider:cap:{partner}")
        known = [r for r in results if r is not None]
        if not known:
            return refuse(404, "the alert it references is not known here", partner)
        return JSONResponse({"acknowledged": [r.ping_id for r in known], "status": [r.status for r in known]})

    return router
