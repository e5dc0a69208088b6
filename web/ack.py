"""``/ack/{token}``: GET and HEAD show what is being confirmed and change nothing; POST
confirms (CSRF-checked) and shows the measured response time."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine

from commtest.clock import Clock
from commtest.settings import Settings
from scheduler.acks import acknowledge_token, is_well_formed, lookup_token
from web.csrf import CSRF_FIELD, CsrfSigner
from web.i18n import format_duration, format_when, pick_language, texts
from web.pages import message, page

METHOD = "link"


@dataclass(frozen=True)
class AckContext:
    settings: Settings
    engine: Engine
    clock: Clock
    signer: CsrfSigner


def ack_router(ctx: AckContext) -> APIRouter:
    router = APIRouter()

    @router.api_route("/ack/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
    def show(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
        base = f"/ack/{token}"
        if not is_well_formed(token):
            return message(request, pick_language(lang, None, ctx.settings.default_language), "malformed", 400)
        info = lookup_token(ctx.engine, token)
        if info is None:
            return message(request, pick_language(lang, None, ctx.settings.default_language), "unknown", 404)
        language = pick_language(lang, info.preferred_languages(), ctx.settings.default_language)
        if info.acked_at is not None:
            return message(request, language, "already", 409, switch_base=base,
                           when=format_when(info.acked_at, info.timezone, language))
        if info.expired(ctx.clock.now()):
            return message(request, language, "expired", 410, switch_base=base)
        t = texts(language)
        return page(
            request, "ack.html", language, switch_base=base, info=info,
            channel_name=t.get(f"ch_{info.channel}", info.channel),
            sent=format_when(info.sent_at, info.timezone, language),
            deadline=format_when(info.deadline_at, info.timezone, language),
            csrf=ctx.signer.issue(info.token_hash), action=f"{base}?lang={language}",
        )

    @router.post("/ack/{token}", response_class=HTMLResponse)
    async def confirm(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
        fallback = pick_language(lang, None, ctx.settings.default_language)
        if not is_well_formed(token):
            return message(request, fallback, "malformed", 400)
        form = await request.form()
        info = lookup_token(ctx.engine, token)
        if info is None:
            return message(request, fallback, "unknown", 404)
        language = pick_language(lang, info.preferred_languages(), ctx.settings.default_language)
        # Used or expired links get their own page whatever the form holds: nothing would be recorded.
        if info.acked_at is not None:
            return message(request, language, "already", 409,
                           when=format_when(info.acked_at, info.timezone, language))
        if info.expired(ctx.clock.now()):
            return message(request, language, "expired", 410)
        csrf = form.get(CSRF_FIELD)
        if not isinstance(csrf, str) or not ctx.signer.check(info.token_hash, csrf):
            return message(request, language, "csrf", 403, again=f"/ack/{token}?lang={language}")
        name = form.get("name")
        outcome = acknowledge_token(
            ctx.engine, ctx.clock, ctx.settings, token, method=METHOD,
            by=name[:200] if isinstance(name, str) else None,
            user_agent=request.headers.get("user-agent"),
            source=request.client.host if request.client else None,
        )
        zone = outcome.timezone or info.timezone
        if outcome.status == "acked":
            return page(request, "done.html", language, title=texts(language)["done_title"],
                        when=format_when(outcome.acked_at, zone, language),
                        duration=format_duration(outcome.response_ms, language), late=outcome.late)
        if outcome.status == "already":
            return message(request, language, "already", 409, when=format_when(outcome.acked_at, zone, language))
        if outcome.status == "expired":
            return message(request, language, "expired", 410)
        return message(request, language, "unknown", 404)

    return router
