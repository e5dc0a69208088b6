"""``/hooks/twilio/...``: Twilio's webhooks for calls and SMS.

Every request is checked in order of cost before anything changes: the body's size (its
``Content-Length`` and the bytes read, before parsing), the account it names (``AccountSid``,
one of the Twilio accounts the settings configure), then Twilio's signature over the URL
as Twilio requested it (``COMMTEST_PUBLIC_BASE_URL`` + path + query) and the POST parameters.
Unsigned, forged or oversized: 403 (413) and nothing changes. A valid callback about a call or
message we do not know: 200 and nothing changes. The database work runs in the thread pool.

* ``voice/status``  call progress: ringing, answered, busy, no-answer, failed (``ping`` in the URL)
* ``voice/amd``     answering-machine detection: a machine is ``voicemail``, never an answer
* ``voice/gather``  the key pressed: 1 acknowledges; another key repeats the message (TwiML)
* ``sms/status``    delivered, undelivered, failed
* ``sms/inbound``   the officer's reply (set as the number's "a message comes in" webhook)
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from twilio.twiml.messaging_response import MessagingResponse

from channels.sms.replies import inbound_sms, message_status_report, reply_text
from channels.twilio.config import TwilioAccount, twilio_accounts
from channels.twilio.signature import (
    HOOKS_PREFIX,
    SIGNATURE_HEADER,
    SMS_INBOUND,
    SMS_STATUS,
    VOICE_AMD,
    VOICE_GATHER,
    VOICE_STATUS,
    hook_url,
    is_valid,
)
from channels.voice.callbacks import amd_report, call_status_report
from channels.voice.twiml import MAX_REPEATS, answer_twiml, pack_speech, unpack_speech
from commtest.clock import Clock
from commtest.settings import Settings
from scheduler.twilio_in import acknowledge_keypress, apply_call_reports, apply_sms_reply

__all__ = ["MAX_HOOK_BYTES", "twilio_router"]

log = logging.getLogger(__name__)

# A status callback is about 1 kB, an inbound SMS at most 1,600 characters plus ~30 fields.
MAX_HOOK_BYTES = 16 * 1024
MAX_FIELDS = 64
ACTOR_PREFIX = "provider:"
_XML = "text/xml"
_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


async def _read_form(request: Request) -> list[tuple[str, str]]:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_HOOK_BYTES):
        raise _Refused(413, "body too large")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_HOOK_BYTES:
            raise _Refused(413, "body too large")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise _Refused(403, "not a Twilio form post")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Refused(403, f"unreadable form: {exc}") from exc


def twilio_router(settings: Settings, engine: Engine, clock: Clock) -> APIRouter:
    router = APIRouter()
    accounts: dict[str, TwilioAccount] = {a.account_sid: a for a in twilio_accounts(settings)}
    base = settings.public_base_url

    async def verified(request: Request, path: str) -> dict[str, str]:
        """The form of a genuine Twilio request to ``path``, or ``_Refused``."""
        pairs = await _read_form(request)
        multi: dict[str, list[str]] = {}
        for key, value in pairs:
            multi.setdefault(key, []).append(value)
        account = accounts.get((multi.get("AccountSid") or [""])[0])
        if account is None:
            raise _Refused(403, "no configured Twilio account with this AccountSid")
        url = hook_url(base, path) + (f"?{request.url.query}" if request.url.query else "")
        if not is_valid(account.auth_token, url, multi, request.headers.get(SIGNATURE_HEADER)):
            raise _Refused(403, "missing or wrong X-Twilio-Signature")
        return {k: v[0] for k, v in multi.items()}

    def ping_of(request: Request) -> int | None:
        raw = request.query_params.get("ping", "")
        return int(raw) if raw.isdigit() and len(raw) <= 12 else None

    def actor(request: Request) -> str:
        return f"{ACTOR_PREFIX}{request.query_params.get('provider', 'twilio')[:40]}"

    def hook(path: str, handle: Callable[[Request, dict[str, str]], Awaitable[Response]]) -> None:
        async def endpoint(request: Request) -> Response:
            try:
                form = await verified(request, path)
            except _Refused as refused:
                log.warning("twilio webhook %s refused (%s): %s", path, refused.status, refused.reason)
                return Response("forbidden" if refused.status == 403 else "too large", status_code=refused.status,
                                media_type="text/plain")
            return await handle(request, form)

        router.add_api_route(f"{HOOKS_PREFIX}/{path}", endpoint, methods=["POST"], include_in_schema=False)

    async def call_status(request: Request, form: dict[str, str]) -> Response:
        ping_id = ping_of(request)
        report = call_status_report(form, ping_id, clock.now()) if ping_id is not None else None
        if report is not None:
            await run_in_threadpool(apply_call_reports, engine, settings, clock, [report], actor(request))
        return Response(_EMPTY, media_type=_XML)

    async def amd(request: Request, form: dict[str, str]) -> Response:
        ping_id = ping_of(request)
        report = amd_report(form, ping_id, clock.now()) if ping_id is not None else None
        if report is not None:
            await run_in_threadpool(apply_call_reports, engine, settings, clock, [report], actor(request))
        return Response(_EMPTY, media_type=_XML)

    async def gather(request: Request, form: dict[str, str]) -> Response:
        ping_id = ping_of(request)
        speech = unpack_speech(request.query_params.get("say", ""))
        digits = form.get("Digits", "")
        if ping_id is None or speech is None:
            return Response(answer_twiml(None, "unknown"), media_type=_XML)
        if digits == "1":
            outcome = await run_in_threadpool(acknowledge_keypress, engine, settings, clock, ping_id,
                                              form.get("CallSid", ""), actor(request))
            kind = {"acked": "acked", "already": "acked", "closed": "closed"}.get(outcome.status, "unknown")
            return Response(answer_twiml(speech if kind != "unknown" else None, kind), media_type=_XML)
        repeats = request.query_params.get("n", "0")
        n = int(repeats) + 1 if repeats.isdigit() and len(repeats) < 3 else MAX_REPEATS + 1
        if not digits or n > MAX_REPEATS:
            return Response(answer_twiml(speech, "goodbye"), media_type=_XML)
        again = hook_url(base, VOICE_GATHER, ping=ping_id, provider=request.query_params.get("provider", "twilio"),
                         n=n, say=pack_speech(speech))
        return Response(answer_twiml(speech, "repeat", again), media_type=_XML)

    async def sms_status(request: Request, form: dict[str, str]) -> Response:
        ping_id = ping_of(request)
        report = message_status_report(form, ping_id, clock.now()) if ping_id is not None else None
        if report is not None:
            await run_in_threadpool(apply_call_reports, engine, settings, clock, [report], actor(request))
        return Response(_EMPTY, media_type=_XML)

    async def sms_inbound(request: Request, form: dict[str, str]) -> Response:
        sms = inbound_sms(form)
        outcome = await run_in_threadpool(apply_sms_reply, engine, settings, clock, sms, actor(request))
        text = reply_text(outcome.language, outcome.status)
        response = MessagingResponse()
        if text:
            response.message(text)
        return Response(str(response), media_type=_XML)

    hook(VOICE_STATUS, call_status)
    hook(VOICE_AMD, amd)
    hook(VOICE_GATHER, gather)
    hook(SMS_STATUS, sms_status)
    hook(SMS_INBOUND, sms_inbound)
    return router
