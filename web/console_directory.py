"""The directory in the console: the organisation × field-of-work matrix (each contact point,
its endpoints, when each was last proven reachable and its last outcome), editing an endpoint,
the corrections duty officers sent (approve or reject), and each organisation's calendar links."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from commtest.access.feeds import create_feed, list_feeds, revoke_feed
from commtest.corrections import CorrectionRefused, approve_correction, list_corrections, reject_correction
from commtest.db import read_session, run_write
from commtest.directory.edit import BadEdit, EndpointChange, apply_endpoint_change
from commtest.errors import NotFoundError
from commtest.i18n import N_
from commtest.models import ContactPoint, Endpoint, FieldOfWork, Organisation
from commtest.users import OPERATING_ROLES
from commtest.vocabulary import ENDPOINT_STATUSES, name_of
from web.console_auth import ConsoleContext, Session, actor_of, may_operate

CHANGE_NAMES = {"voice": N_("phone number (calls)"), "sms": N_("phone number (SMS)"), "email": N_("e-mail address"),
                "name": N_("contact name")}


def matrix(ctx: ConsoleContext, lang: str) -> dict[str, object]:
    t = ctx.texts(lang)
    with read_session(ctx.engine) as s:
        fields = list(s.exec(select(FieldOfWork).order_by(col(FieldOfWork.code))).all())
        orgs = list(s.exec(select(Organisation).order_by(col(Organisation.code))).all())
        cps = list(s.exec(select(ContactPoint).order_by(col(ContactPoint.code))).all())
        eps = list(s.exec(select(Endpoint).order_by(col(Endpoint.priority), col(Endpoint.id))).all())
    by_cp: dict[int, list[dict[str, object]]] = {}
    for e in eps:
        by_cp.setdefault(e.contact_point_id, []).append({
            "id": e.id, "kind": name_of("channel", e.kind, t), "address": e.address, "label": e.label,
            "status": e.status, "status_text": name_of("endpoint_status", e.status, t),
            "verified": t.when(e.verified_at) if e.verified_at else t("never"),
            "outcome": name_of("outcome", e.last_outcome, t) if e.last_outcome else "–"})
    cells: dict[tuple[int, int], list[dict[str, object]]] = {}
    for cp in cps:
        cells.setdefault((cp.organisation_id, cp.field_id), []).append(
            {"code": cp.code, "name": cp.name, "active": cp.active, "endpoints": by_cp.get(cp.id or 0, [])})
    return {"fields": [(f.id, f.names.get(lang) or f.name) for f in fields],
            "organisations": [(o.id, o.code, o.name, o.role) for o in orgs], "cells": cells}


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter()

    def page(request: Request, lang: str, session: Session, status: int = 200, *, new_feed: str = "") -> HTMLResponse:
        t = ctx.texts(lang)
        corrections = list_corrections(ctx.engine, "pending")
        shown = [{"c": c, "changes": [{"what": t(CHANGE_NAMES.get(p.what, p.what)), "before": p.before or t("(new)"),
                                       "after": p.after} for p in c.planned],
                  "submitted": t.when(c.submitted_at)} for c in corrections]
        decided = [{"c": c, "decided": t.when(c.decided_at)} for c in list_corrections(ctx.engine, None, 30)
                   if c.status != "pending"]
        feeds = [f for f in list_feeds(ctx.engine) if f.revoked_at is None]
        return ctx.render(request, "console_directory.html", lang, status, title=t("Directory"), session=session,
                          m=matrix(ctx, lang), corrections=shown, decided=decided, feeds=feeds, new_feed=new_feed,
                          base_url=ctx.settings.public_base_url.rstrip("/"))

    @r.get("/console/directory", response_class=HTMLResponse)
    def directory(request: Request) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        return page(request, lang, session)

    async def operate(request: Request, action: str):  # type: ignore[no-untyped-def]
        lang = ctx.lang(request)
        session, form, refusal = await ctx.posted(request, lang)
        if refusal is not None or session is None:
            return lang, None, form, refusal or ctx.must_sign_in(request, lang)
        if not may_operate(session):
            return lang, session, form, ctx.forbidden(request, lang, session, OPERATING_ROLES, action)
        return lang, session, form, None

    # --- endpoints -------------------------------------------------------------------------
    def endpoint_page(request: Request, lang: str, session: Session, endpoint_id: int, status: int = 200,
                      error: str = "", values: dict[str, str] | None = None) -> HTMLResponse:
        t = ctx.texts(lang)
        with read_session(ctx.engine) as s:
            ep = s.get(Endpoint, endpoint_id)
            cp = s.get(ContactPoint, ep.contact_point_id) if ep else None
        if ep is None or cp is None:
            return ctx.notice(request, lang, t("No such endpoint"), t("There is no endpoint %(id)s.", id=endpoint_id),
                              404, session)
        form = values or {"address": ep.address, "label": ep.label, "priority": str(ep.priority), "status": ep.status}
        return ctx.render(request, "console_endpoint.html", lang, status, title=t("Edit an endpoint"), session=session,
                          ep=ep, cp=cp, kind=name_of("channel", ep.kind, t), error=error, values=form,
                          statuses=[(v, name_of("endpoint_status", v, t)) for v in ENDPOINT_STATUSES],
                          verified=t.when(ep.verified_at) if ep.verified_at else t("never"))

    @r.get("/console/directory/endpoints/{endpoint_id}", response_class=HTMLResponse)
    def endpoint(request: Request, endpoint_id: int) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        return endpoint_page(request, lang, session, endpoint_id)

    @r.post("/console/directory/endpoints/{endpoint_id}", response_class=HTMLResponse)
    async def save_endpoint(request: Request, endpoint_id: int) -> Response:
        lang, session, form, refusal = await operate(request, N_("edit the directory"))
        if refusal is not None:
            return refusal
        priority = form.get("priority", "").strip()

        def work() -> Response:
            t = ctx.texts(lang)
            if not priority.isdigit():
                return endpoint_page(request, lang, session, endpoint_id, 400,
                                     t("priority: a whole number from 1 (tried first) to 99"), form)
            change = EndpointChange(address=form.get("address", ""), label=form.get("label", ""),
                                    priority=int(priority), status=form.get("status") or None)

            def apply(s):  # type: ignore[no-untyped-def]
                ep = s.get(Endpoint, endpoint_id)
                if ep is None:
                    raise NotFoundError(f"no endpoint {endpoint_id}")
                return apply_endpoint_change(s, ep, change, ctx.clock.now(), actor=actor_of(session),
                                             by=session.user.username)
            try:
                run_write(ctx.engine, apply)
            except BadEdit as exc:
                return endpoint_page(request, lang, session, endpoint_id, 400, str(exc), form)
            except NotFoundError:
                return endpoint_page(request, lang, session, endpoint_id)
            return RedirectResponse(f"/console/directory?lang={lang}", status_code=303)

        return await run_in_threadpool(work)

    # --- corrections -----------------------------------------------------------------------
    @r.post("/console/directory/corrections/{correction_id}/{decision}", response_class=HTMLResponse)
    async def decide(request: Request, correction_id: int, decision: str) -> Response:
        lang, session, form, refusal = await operate(request, N_("approve or reject a correction"))
        if refusal is not None:
            return refusal

        def work() -> Response:
            t = ctx.texts(lang)
            try:
                if decision == "approve":
                    approve_correction(ctx.engine, correction_id, ctx.clock.now(), by=session.user.username,
                                       actor=actor_of(session))
                elif decision == "reject":
                    reject_correction(ctx.engine, correction_id, ctx.clock.now(), by=session.user.username,
                                      actor=actor_of(session), note=form.get("note", ""))
                else:
                    return ctx.notice(request, lang, t("Page not found"), t("There is no page at this address."), 404,
                                      session)
            except (CorrectionRefused, BadEdit, NotFoundError) as exc:
                return ctx.notice(request, lang, t("Nothing changed"), str(exc), 409, session,
                                  link=(f"/console/directory?lang={lang}", t("Directory")))
            return RedirectResponse(f"/console/directory?lang={lang}#corrections", status_code=303)

        return await run_in_threadpool(work)

    # --- calendar links --------------------------------------------------------------------
    @r.post("/console/directory/feeds", response_class=HTMLResponse)
    async def new_feed(request: Request) -> Response:
        lang, session, form, refusal = await operate(request, N_("create or revoke calendar links"))
        if refusal is not None:
            return refusal

        def work() -> Response:
            t = ctx.texts(lang)
            try:
                _info, token = create_feed(ctx.engine, form.get("organisation", ""), ctx.clock.now(),
                                           by=session.user.username, actor=actor_of(session))
            except NotFoundError as exc:
                return ctx.notice(request, lang, t("Nothing changed"), str(exc), 404, session)
            return page(request, lang, session, new_feed=f"{ctx.settings.public_base_url.rstrip('/')}/calendar/{token}.ics")

        return await run_in_threadpool(work)

    @r.post("/console/directory/feeds/{feed_id}/revoke", response_class=HTMLResponse)
    async def drop_feed(request: Request, feed_id: int) -> Response:
        lang, session, _form, refusal = await operate(request, N_("create or revoke calendar links"))
        if refusal is not None:
            return refusal
        try:
            await run_in_threadpool(lambda: revoke_feed(ctx.engine, feed_id, ctx.clock.now(),
                                                        by=session.user.username, actor=actor_of(session)))
        except NotFoundError as exc:
            t = ctx.texts(lang)
            return ctx.notice(request, lang, t("Nothing changed"), str(exc), 404, session)
        return RedirectResponse(f"/console/directory?lang={lang}#feeds", status_code=303)

    return r
