"""A user's own API tokens: create one (shown once), list them, revoke one."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from commtest.access import create_token, list_tokens, revoke_token
from commtest.errors import CommtestError
from web.console_auth import ConsoleContext, Session, actor_of


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter()

    def page(request: Request, lang: str, session: Session, status: int = 200, *, secret: str = "",
             error: str = "") -> HTMLResponse:
        t = ctx.texts(lang)
        tokens = [{"id": x.id, "name": x.name, "prefix": x.prefix, "created": t.when(x.created_at),
                   "revoked": t.when(x.revoked_at) if x.revoked_at else ""}
                  for x in list_tokens(ctx.engine, session.user.username)]
        return ctx.render(request, "console_tokens.html", lang, status, title=t("API tokens"), session=session,
                          tokens=tokens, secret=secret, error=error, base_url=ctx.settings.public_base_url.rstrip("/"))

    @r.get("/console/tokens", response_class=HTMLResponse)
    def tokens(request: Request) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        return page(request, lang, session)

    @r.post("/console/tokens", response_class=HTMLResponse)
    async def create(request: Request) -> Response:
        lang = ctx.lang(request)
        session, form, refusal = await ctx.posted(request, lang)
        if refusal is not None or session is None:
            return refusal or ctx.must_sign_in(request, lang)

        def work() -> Response:
            try:
                _info, raw = create_token(ctx.engine, session.user.username, form.get("name", ""), ctx.clock.now(),
                                          actor=actor_of(session))
            except CommtestError as exc:
                return page(request, lang, session, 400, error=str(exc))
            return page(request, lang, session, secret=raw)

        return await run_in_threadpool(work)

    @r.post("/console/tokens/{token_id}/revoke", response_class=HTMLResponse)
    async def revoke(request: Request, token_id: int) -> Response:
        lang = ctx.lang(request)
        session, _form, refusal = await ctx.posted(request, lang)
        if refusal is not None or session is None:
            return refusal or ctx.must_sign_in(request, lang)
        try:
            await run_in_threadpool(lambda: revoke_token(ctx.engine, token_id, ctx.clock.now(), actor=actor_of(session),
                                                         owner=session.user.username))
        except CommtestError as exc:
            return page(request, lang, session, 404, error=str(exc))
        return RedirectResponse(f"/console/tokens?lang={lang}", status_code=303)

    return r
