"""Runs in the console: the list, the live board (server-sent events, with a plain refresh
when scripts are off), aborting, recording a manual outcome, and each run's test report and
timeline.

The live stream (``/console/runs/{id}/live``) polls the board once a second with a read-only
query and sends it only when something a person would see changed; it ends when the run
closes or the session does (a signed-out browser stops receiving at the next poll).
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from commtest.db import read_session, session_scope
from commtest.errors import CommtestError, NotFoundError
from commtest.i18n import N_
from commtest.models import Ping, TestRun
from commtest.users import OPERATING_ROLES
from commtest.vocabulary import name_of
from web.console_auth import CONSOLE_CSP, ConsoleContext, Session, actor_of, may_operate
from web.console_report import style_policy
from web.pages import TEMPLATES
from web.run_board import Board, build_board, run_rows

PAGE = 25
LIVE_POLL_SECONDS = 1.0
LIVE_MAX_SECONDS = 900  # then the browser reconnects (EventSource does so by itself)
_SCRIPT = re.compile(r"<script\b[^>]*>.*?</script>", re.S)


def board_html(board: Board, ctx: ConsoleContext, lang: str) -> str:
    t = ctx.texts(lang)
    return TEMPLATES.get_template("console_board_table.html").render(board=board, lang=lang, **t.jinja_globals())


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter()

    def signed_in(request: Request) -> tuple[str, Session | None]:
        return ctx.lang(request), ctx.session(request)

    @r.get("/console/runs", response_class=HTMLResponse)
    def runs(request: Request, page: int = 1) -> Response:
        lang, session = signed_in(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        page = max(1, page)
        t = ctx.texts(lang)
        rows, total = run_rows(ctx.engine, t, limit=PAGE, offset=(page - 1) * PAGE)
        return ctx.render(request, "console_runs.html", lang, title=t("Runs"), session=session, runs=rows, page=page,
                          more=page * PAGE < total)

    def not_found(request: Request, lang: str, session: Session, run_id: int) -> HTMLResponse:
        t = ctx.texts(lang)
        return ctx.notice(request, lang, t("No such run"), t("There is no run %(id)s.", id=run_id), 404, session,
                          link=(f"/console/runs?lang={lang}", t("Runs")))

    @r.get("/console/runs/{run_id}", response_class=HTMLResponse)
    def board_page(request: Request, run_id: int) -> Response:
        lang, session = signed_in(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        t = ctx.texts(lang)
        try:
            board = build_board(ctx.engine, run_id, t, ctx.clock.now())
        except NotFoundError:
            return not_found(request, lang, session, run_id)
        return ctx.render(request, "console_board.html", lang, title=t("Run %(id)s", id=run_id), session=session,
                          board=board, board_table=board_html(board, ctx, lang))

    @r.get("/console/runs/{run_id}/live")
    async def live(request: Request, run_id: int) -> Response:
        lang = ctx.lang(request)
        session = await run_in_threadpool(ctx.session, request)
        if session is None:
            return Response("sign in first\n", status_code=401, media_type="text/plain")
        t = ctx.texts(lang)

        async def events() -> AsyncIterator[str]:
            last = ""
            started = asyncio.get_running_loop().time()
            yield "retry: 3000\n\n"
            while asyncio.get_running_loop().time() - started < LIVE_MAX_SECONDS:
                if await request.is_disconnected() or await run_in_threadpool(ctx.session, request) is None:
                    yield "event: end\ndata: {}\n\n"
                    return
                try:
                    board = await run_in_threadpool(build_board, ctx.engine, run_id, t, ctx.clock.now())
                except NotFoundError:
                    yield "event: end\ndata: {}\n\n"
                    return
                version = board.version()
                if version != last:
                    last = version
                    data = {"html": board_html(board, ctx, lang), "status": board.status,
                            "status_text": board.status_text, "closed": board.closed, "counts": board.counts}
                    yield f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
                if board.closed:
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(LIVE_POLL_SECONDS)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def operate(request: Request, run_id: int, action: str):  # type: ignore[no-untyped-def]
        lang = ctx.lang(request)
        session, form, refusal = await ctx.posted(request, lang)
        if refusal is not None or session is None:
            return lang, None, form, refusal or ctx.must_sign_in(request, lang)
        if not may_operate(session):
            return lang, session, form, ctx.forbidden(request, lang, session, OPERATING_ROLES, action)
        return lang, session, form, None

    @r.post("/console/runs/{run_id}/abort", response_class=HTMLResponse)
    async def abort(request: Request, run_id: int) -> Response:
        lang, session, form, refusal = await operate(request, run_id, N_("start or abort a test"))
        if refusal is not None:
            return refusal

        def work() -> Response:
            from scheduler.engine import RunEngine

            t = ctx.texts(lang)
            runs = RunEngine(ctx.engine, ctx.settings, ctx.clock, actor=actor_of(session))
            try:
                runs.abort_run(run_id, by=session.user.username, reason=form.get("reason", "").strip()[:500])
            except NotFoundError:
                return not_found(request, lang, session, run_id)
            except CommtestError as exc:
                return ctx.notice(request, lang, t("Not aborted"), str(exc), 409, session,
                                  link=(f"/console/runs/{run_id}?lang={lang}", t("Run %(id)s", id=run_id)))
            finally:
                runs.close()
            return RedirectResponse(f"/console/runs/{run_id}?lang={lang}", status_code=303)

        return await run_in_threadpool(work)

    @r.post("/console/runs/{run_id}/manual", response_class=HTMLResponse)
    async def manual(request: Request, run_id: int) -> Response:
        lang, session, form, refusal = await operate(request, run_id, N_("record a manual outcome"))
        if refusal is not None:
            return refusal
        t = ctx.texts(lang)
        how = form.get("how", "").strip()
        back = (f"/console/runs/{run_id}?lang={lang}", t("Run %(id)s", id=run_id))
        if not how or not form.get("ping", "").isdigit():
            return ctx.notice(request, lang, t("Nothing recorded"),
                              t("Choose the attempt and say how the answer came (radio, satellite phone, call back)."),
                              400, session, link=back)

        def work() -> Response:
            from scheduler.records import acknowledge

            now = ctx.clock.now()
            with session_scope(ctx.engine, durable=True) as s:
                ping = s.get(Ping, int(form["ping"]))
                if ping is None or ping.run_id != run_id or ping.state in ("pending", "cancelled"):
                    return ctx.notice(request, lang, t("Nothing recorded"),
                                      t("That attempt of run %(id)s was not sent, so there is nothing to answer.",
                                        id=run_id), 409, session, link=back)
                result = acknowledge(s, ping, max(now, ping.sent_at or ping.dispatching_at or now),
                                     method=f"manual:{how}"[:32], actor=actor_of(session),
                                     by=form.get("by", "").strip()[:200] or None)
            if result.status == "already":
                return ctx.notice(request, lang, t("Already answered"),
                                  t("This attempt was already answered at %(when)s; nothing changed.",
                                    when=t.when(result.acked_at)), 409, session, link=back)
            return RedirectResponse(f"/console/runs/{run_id}?lang={lang}", status_code=303)

        return await run_in_threadpool(work)

    # --- the test report and the timeline --------------------------------------------------
    def report_of(run_id: int):  # type: ignore[no-untyped-def]
        from reports.test_report import build_test_report

        return build_test_report(ctx.engine, run_id)

    @r.get("/console/runs/{run_id}/report", response_class=HTMLResponse)
    def detail(request: Request, run_id: int) -> Response:
        lang, session = signed_in(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        t = ctx.texts(lang)
        try:
            report = report_of(run_id)
        except NotFoundError:
            return not_found(request, lang, session, run_id)
        with read_session(ctx.engine) as s:
            run = s.exec(select(TestRun).where(TestRun.id == run_id)).one()
            simulated = any(p.simulated for p in s.exec(select(Ping).where(Ping.run_id == run_id)).all())
        from reports.i18n import ReportTexts

        details = ReportTexts(lang, report.timezone)  # the timeline's details, worded as the report words them
        timeline = [{"at": t.when(e.at, seconds=True), "what": name_of("event", e.kind, t),
                     "organisation": e.organisation or "", "channel": name_of("channel", e.channel, t) if e.channel else "",
                     "contact_point": e.contact_point or "", "outcome": name_of("outcome", e.outcome, t) if e.outcome else "",
                     "detail": details.event_detail(e.kind, e.params)} for e in report.timeline]
        return ctx.render(request, "console_run.html", lang, title=t("Test report of run %(id)s", id=run_id),
                          session=session, run=run, timeline=timeline, simulated=simulated,
                          status_text=name_of("run_status", run.status, t), csp=CONSOLE_CSP)

    @r.get("/console/runs/{run_id}/report.{fmt}")
    def report_file(request: Request, run_id: int, fmt: str, download: int = 0) -> Response:
        from reports.render import render_html, render_json, render_pdf

        lang, session = signed_in(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        if fmt not in ("html", "pdf", "json"):
            return not_found(request, lang, session, run_id)
        try:
            report = report_of(run_id)
        except NotFoundError:
            return not_found(request, lang, session, run_id)
        name = f"commtest-run-{run_id}-{lang}.{fmt}"
        attach = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
        if fmt == "json":
            return Response(render_json(report), media_type="application/json", headers=attach)
        document = _SCRIPT.sub("", render_html(report, lang, ctx.settings.timezone))
        if fmt == "pdf":
            return Response(render_pdf(document), media_type="application/pdf", headers=attach)
        # Its own document, framed by the run page only: the report keeps its own fonts and styles.
        csp = style_policy(document).replace("frame-ancestors 'none'", "frame-ancestors 'self'")
        headers = {"Content-Security-Policy": csp, "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store"}
        if download:
            headers["Content-Disposition"] = attach["Content-Disposition"]
        return HTMLResponse(document, headers=headers)

    return r
