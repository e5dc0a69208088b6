"""The ping's page for a video ping: the personal join link, and, when the bridge cannot see
who joins, "I am in the video room" (``POST /ack/{token}/video``, recorded as self-reported).

Opening the page is not joining the room: a video ping is acknowledged by the bridge's
account of the join (method ``video-join``), so the page shows no "Confirm" button, and a
confirmation posted to ``/ack/{token}`` for such a ping is refused. Where the bridge reports
nothing (``COMMTEST_JITSI_PRESENCE=none``) the officer's own word is recorded, as
``self-reported``, and every report shows it as such, never as a join.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from channels.video.links import JoinLink, join_link
from commtest.db import read_session
from commtest.i18n import format_duration, format_moment
from commtest.models import Ping
from scheduler.ack_group import acknowledge_token
from scheduler.acks import AckOutcome, TokenInfo, is_well_formed, lookup_token
from sqlalchemy.engine import Engine

from commtest.clock import Clock
from commtest.settings import Settings
from web.csrf import CSRF_FIELD, CsrfSigner
from web.hooks.bounded import BodyTooLarge, read_bounded
from web.i18n import pick_language
from web.pages import message, page, texts

METHOD = "self-reported"
MAX_FORM_BYTES = 4096  # a CSRF token and an optional name


class AckPages(Protocol):
    """What these pages need of the ack pages' context (web.ack.AckContext)."""

    settings: Settings
    engine: Engine
    clock: Clock
    signer: CsrfSigner


@dataclass(frozen=True)
class VideoPage:
    join_url: str
    self_report: bool  # the bridge sees no joins: offer "I am in the video room"
    action: str  # where that form posts


def join_of(ctx: AckPages, info: TokenInfo) -> JoinLink | None:
    """The ping's join link, or None when its provider is not a video bridge (the sandbox)."""
    if info.channel != "video":
        return None
    with read_session(ctx.engine) as s:
        provider = s.exec(select(Ping.provider).where(Ping.id == info.ping_id)).first()
    if not provider:
        return None
    return join_link(ctx.settings, ctx.clock, provider=provider, run_id=info.run_id, ping_id=info.ping_id,
                     organisation_code=info.organisation_code, contact_name=info.contact_name,
                     deadline_at=info.deadline_at)


def video_page(ctx: AckPages, info: TokenInfo, token: str, language: str) -> VideoPage | None:
    link = join_of(ctx, info)
    if link is None:
        return None
    return VideoPage(link.url, not link.observes_presence, f"/ack/{token}/video?lang={language}")


def not_by_link(request: Request, language: str, token: str) -> HTMLResponse:
    """A confirmation posted for a video ping: joining the room is the answer."""
    t = texts(language)
    return page(request, "message.html", language, 409, title=t("Please join the video room"),
                text=t("Opening this page does not count as joining: please use the join link on the page. The "
                       "video room itself records your arrival."), again=f"/ack/{token}?lang={language}")


def video_ack_router(ctx: AckPages) -> APIRouter:
    router = APIRouter()

    @router.post("/ack/{token}/video", response_class=HTMLResponse)
    async def self_report(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
        fallback = pick_language(lang, None, ctx.settings.default_language)
        if not is_well_formed(token):
            return message(request, fallback, "malformed", 400)
        info = await run_in_threadpool(lookup_token, ctx.engine, token)
        if info is None or info.channel != "video":
            return message(request, fallback, "unknown", 404)
        language = pick_language(lang, info.preferred_languages(), ctx.settings.default_language)
        try:
            body = await read_bounded(request, MAX_FORM_BYTES)
        except BodyTooLarge:
            return message(request, language, "toolarge", 413)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=16).items() if v} \
            if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded") else {}
        link = await run_in_threadpool(join_of, ctx, info)
        if link is not None and link.observes_presence:
            return not_by_link(request, language, token)  # the bridge itself records the join
        if info.acked_at is not None:
            return message(request, language, "already", 409,
                           when=format_moment(info.acked_at, info.timezone, language))
        if info.expired(ctx.clock.now()) and not info.run_closed:
            return message(request, language, "expired", 410)
        if not ctx.signer.check(info.token_hash, form.get(CSRF_FIELD, "")):
            return message(request, language, "csrf", 403, again=f"/ack/{token}?lang={language}")
        name = form.get("name")
        outcome: AckOutcome = await run_in_threadpool(
            lambda: acknowledge_token(ctx.engine, ctx.clock, ctx.settings, token, method=METHOD,
                                      by=name[:200] if name else None, user_agent=request.headers.get("user-agent"),
                                      source=request.client.host if request.client else None))
        zone = outcome.timezone or info.timezone
        if outcome.status == "acked":
            t = texts(language)
            return page(request, "ack_video_done.html", language, title=t("Thank you: recorded as reported by you"),
                        when=format_moment(outcome.acked_at, zone, language),
                        duration=format_duration(outcome.response_ms, language), late=outcome.late)
        if outcome.status == "after_close":
            key = "called_off" if outcome.run_status == "aborted" else "closed"
            return message(request, language, key, 200, when=format_moment(outcome.acked_at, zone, language),
                           closed=format_moment(outcome.run_finished_at or info.run_finished_at, zone, language))
        if outcome.status == "already":
            return message(request, language, "already", 409, when=format_moment(outcome.acked_at, zone, language))
        if outcome.status == "expired":
            return message(request, language, "expired", 410)
        return message(request, language, "unknown", 404)

    return router
