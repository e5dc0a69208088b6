""""Our details changed": a duty officer sends a new number, e-mail address or contact name
from the acknowledgement page (``POST /ack/{token}/correction``). It files a correction for a
coordinator to approve or reject (``commtest.corrections``); it changes nothing by itself and
does not acknowledge the ping.

Cheap checks first, as on the acknowledgement itself: the token's shape, that it exists and
has not expired, the body's size before parsing, then the page's CSRF field (the same one the
confirm form carries, bound to this ping). The texts are the officer catalogue's.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from commtest.corrections import CorrectionRefused, file_correction
from commtest.directory.edit import BadEdit
from commtest.i18n import N_
from scheduler.acks import TokenInfo, is_well_formed, lookup_token
from web.ack import AckContext, BodyTooLarge, read_small_form
from web.client_address import client_address
from web.csrf import CSRF_FIELD
from web.i18n import pick_language
from web.pages import message, page, texts

MAX_CORRECTION_BYTES = 4096
FIELD_ERRORS = {
    "phone": N_("This phone number could not be read. Write it with its country prefix, e.g. +32 2 555 01 10."),
    "email": N_("This e-mail address could not be read. Check it and try again."),
    "contact_name": N_("The contact name is too long (at most 200 characters)."),
    "note": N_("The note is too long (at most 1000 characters)."),
}
NOTHING = N_("Fill in at least a new phone number, a new e-mail address or a new contact name.")
TOO_MANY = N_("Corrections for this message are already waiting for the coordinators. Thank you.")


def correction_router(ctx: AckContext) -> APIRouter:
    router = APIRouter()

    def form_page(request: Request, info: TokenInfo, language: str, token: str, status: int = 200,
                  error: str | None = None, values: dict[str, str] | None = None) -> HTMLResponse:
        t = texts(language)
        return page(request, "ack_correction.html", language, status, title=t("Our contact details changed"),
                    switch_base=f"/ack/{token}/correction", info=info, error=error, values=values or {},
                    csrf=ctx.signer.issue(info.token_hash), action=f"/ack/{token}/correction?lang={language}",
                    back=f"/ack/{token}?lang={language}")

    def usable(token: str, lang: str | None) -> tuple[TokenInfo | None, str]:
        fallback = pick_language(lang, None, ctx.settings.default_language)
        if not is_well_formed(token):
            return None, fallback
        info = lookup_token(ctx.engine, token)
        if info is None:
            return None, fallback
        return info, pick_language(lang, info.preferred_languages(), ctx.settings.default_language)

    @router.get("/ack/{token}/correction", response_class=HTMLResponse)
    def show(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
        info, language = usable(token, lang)
        if info is None:
            return message(request, language, "malformed" if not is_well_formed(token) else "unknown",
                           400 if not is_well_formed(token) else 404)
        if info.expired(ctx.clock.now()):
            return message(request, language, "expired", 410)
        return form_page(request, info, language, token)

    @router.post("/ack/{token}/correction", response_class=HTMLResponse)
    async def send(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
        if not is_well_formed(token):
            return message(request, pick_language(lang, None, ctx.settings.default_language), "malformed", 400)
        info, language = await run_in_threadpool(usable, token, lang)
        if info is None:
            return message(request, language, "unknown", 404)
        try:
            form = await read_small_form(request, MAX_CORRECTION_BYTES)
        except BodyTooLarge:
            return message(request, language, "toolarge", 413)
        if info.expired(ctx.clock.now()):
            return message(request, language, "expired", 410)
        if not ctx.signer.check(info.token_hash, form.get(CSRF_FIELD, "")):
            return message(request, language, "csrf", 403, again=f"/ack/{token}/correction?lang={language}")
        t = texts(language)
        values = {k: form.get(k, "")[:1000] for k in ("phone", "email", "contact_name", "note", "name")}
        try:
            await run_in_threadpool(
                lambda: file_correction(ctx.engine, info.ping_id, ctx.clock.now(), phone=values["phone"],
                                        email=values["email"], contact_name=values["contact_name"],
                                        note=values["note"], by=values["name"], source=client_address(request, ctx.settings)))
        except BadEdit as exc:
            error = t(NOTHING) if not any(values[k].strip() for k in ("phone", "email", "contact_name")) else t(
                FIELD_ERRORS.get(exc.field, FIELD_ERRORS["phone"]))
            return form_page(request, info, language, token, 400, error, values)
        except CorrectionRefused:
            return form_page(request, info, language, token, 429, t(TOO_MANY), values)
        return page(request, "ack_correction_done.html", language, title=t("Thank you: your new details were sent"),
                    back=f"/ack/{token}?lang={language}")

    return router
