"""The console: sign in and out, and the monthly reports (list, generate a draft, read, sign off).

The other pages live in their own modules (``console_overview``, ``console_playbooks``,
``console_schedules``, ``console_runs``, ``console_directory``, ``console_audit``,
``console_tokens``); ``console_router`` composes them. Sessions are kept on the server
(``commtest.access``): signing out deletes the session, so a copied cookie stops working. The
sign-in form carries a token bound to a pre-session cookie (login CSRF: another site cannot
sign a browser in to an account of its choosing).
Sign-in is limited per source address and, whatever the address, per user name
(a growing lock-out after repeated failures). Argon2 runs in the thread pool.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import select
from starlette.concurrency import run_in_threadpool

from commtest import events as ev
from commtest.access import clear_failures, close_session, lockout_of, open_session, record_failure
from commtest.clock import Clock
from commtest.db import read_session, session_scope
from commtest.errors import PermissionDenied
from commtest.i18n import N_
from commtest.models import MonthlyReport, Role
from commtest.settings import Settings
from commtest.users import verify_login
from reports.monthly import SIGNING_ROLES, AlreadySigned, NotSignable, content_hash, generate_monthly, monthly_view, sign_monthly
from reports.monthly_figures import compute_monthly_figures
from web.ack import BodyTooLarge, read_small_form
from web.console_auth import COOKIE_NAME, COOKIE_PATH, ConsoleContext, Session
from web.console_report import embed_monthly
from web.csrf import CSRF_FIELD, CsrfSigner
from web.ratelimit import SlidingWindowLimiter

LOGIN_ATTEMPTS_PER_MINUTE = 10  # per source address; a person mistypes a few times, a script a lot more
GENERATING_ROLES = (Role.coordinator, Role.reviewer, Role.admin)
MAX_COMMENT = 4000
LIST = "/console/reports/monthly"
_MONTH = re.compile(r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$")  # a year Python can shift either way
_NEXT = re.compile(r"^/console[A-Za-z0-9/_.-]*$")  # only back into the console: no open redirect
STATUS_NAMES = {"draft": N_("Draft"), "signed": N_("Signed")}


def console_router(settings: Settings, engine: Engine, clock: Clock, signer: CsrfSigner) -> APIRouter:
    from web import console_audit, console_directory, console_overview, console_playbooks, console_runs
    from web import console_schedules, console_tokens

    ctx = ConsoleContext(settings, engine, clock, signer)
    router = APIRouter()
    _sign_in_routes(router, ctx)
    _monthly_routes(router, ctx)
    for module in (console_overview, console_playbooks, console_schedules, console_runs, console_directory,
                   console_audit, console_tokens):
        router.include_router(module.router(ctx))
    return router


def _audit(engine: Engine, at: datetime, actor: str, kind: str, **data: Any) -> None:
    with session_scope(engine) as s:
        ev.record_event(s, at=at, actor=actor, kind=kind, **data)


def _sign_in_routes(router: APIRouter, ctx: ConsoleContext) -> None:
    limiter = SlidingWindowLimiter(LOGIN_ATTEMPTS_PER_MINUTE, ctx.clock)
    lifetime = timedelta(hours=ctx.settings.session_hours)

    def login_form(request: Request, lang: str, status: int, *, error: str | None, username: str = "",
                   target: str = "/console") -> HTMLResponse:
        t = ctx.texts(lang)
        cookie, new = ctx.login_cookie(request)
        page = ctx.render(request, "console_login.html", lang, status, title=t("Sign in to the console"),
                          next=_safe_next(target), error=error, username=username, csrf=ctx.login_token(cookie))
        if new:
            ctx.set_login_cookie(request, page, cookie)
        return page

    def locked(request: Request, lang: str, until: datetime) -> HTMLResponse:
        t = ctx.texts(lang)
        page = ctx.notice(request, lang, t("Too many failed sign-ins"),
                          t("After repeated failed sign-ins this user name is locked until %(when)s, whatever "
                            "address the attempts come from. Try again then, or ask an admin to set a new password "
                            "(`commtest user passwd`).", when=t.when(until, seconds=True)), 429,
                          link=(f"/console/login?lang={lang}", t("Go to the sign-in page")))
        page.headers["Retry-After"] = str(max(1, int((until - ctx.clock.now()).total_seconds()) + 1))
        return page

    def attempt(username: str, password: str, source: str, agent: str) -> tuple[str, Any]:
        """("ok", cookie) | ("failed", None) | ("locked", until); blocking (Argon2, database)."""
        now = ctx.clock.now()
        lock = lockout_of(ctx.engine, username, now)
        if lock is not None:
            _audit(ctx.engine, now, f"console:{username}", ev.USER_LOGIN_FAILED, user=username, source=source,
                   reason="locked", locked_until=lock.until)
            return "locked", lock.until
        user = verify_login(ctx.engine, username, password) if username and password else None
        if user is None:
            lock = record_failure(ctx.engine, username or "-", now, threshold=ctx.settings.login_lockout_failures,
                                  first_seconds=ctx.settings.login_lockout_seconds)
            _audit(ctx.engine, now, f"console:{username or '-'}", ev.USER_LOGIN_FAILED, user=username, source=source,
                   reason="wrong user name or password", locked_until=lock.until if lock else None)
            return ("locked", lock.until) if lock else ("failed", None)
        clear_failures(ctx.engine, username)
        cookie = open_session(ctx.engine, user.id, now, lifetime, source=source, user_agent=agent)
        _audit(ctx.engine, now, f"console:{username}", ev.USER_LOGIN, user=username, source=source)
        return "ok", cookie

    @router.get("/console/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/console") -> Response:
        lang = ctx.lang(request)
        if ctx.session(request) is not None:
            return RedirectResponse(f"{_safe_next(next)}?lang={lang}", status_code=303)
        return login_form(request, lang, 200, error=None, target=next)

    @router.post("/console/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        lang = ctx.lang(request)
        t = ctx.texts(lang)
        source = ctx.client(request)
        if not limiter.allow(source):
            limited = ctx.notice(request, lang, t("Too many requests"),
                                 t("Too many sign-in attempts came from your address. Wait a minute and try again."),
                                 429, link=(f"/console/login?lang={lang}", t("Go to the sign-in page")))
            limited.headers["Retry-After"] = "60"
            return limited
        try:
            form = await read_small_form(request)
        except BodyTooLarge:
            return login_form(request, lang, 413, error=t("This form is larger than the console accepts. Nothing "
                                                          "was recorded."))
        username = form.get("username", "").strip().lower()[:100]
        password, target = form.get("password", ""), form.get("next", "/console")
        if not ctx.check_login_form(request, form.get(CSRF_FIELD)):
            # Another site's page, or a form too old: no attempt, so no session, no failure counted.
            return login_form(request, lang, 403, error=t("This sign-in form is too old or did not come from the "
                                                          "console. Sign in again on this page."),
                              username=username, target=target)
        outcome, value = await run_in_threadpool(attempt, username, password, source,
                                                 request.headers.get("user-agent", ""))
        if outcome == "locked":
            return locked(request, lang, value)
        if outcome == "failed":
            return login_form(request, lang, 401, error=t("Wrong user name or password, or the account is "
                                                          "deactivated."), username=username, target=target)
        response = RedirectResponse(f"{_safe_next(target)}?lang={lang}", status_code=303)
        response.set_cookie(COOKIE_NAME, value, max_age=int(lifetime.total_seconds()), path=COOKIE_PATH,
                            secure=ctx.secure_cookie(request), httponly=True, samesite="strict")
        return response

    @router.post("/console/logout", response_class=HTMLResponse)
    def logout(request: Request) -> Response:
        # No form token needed: signing out only ever ends a session (and SameSite=Strict
        # keeps other sites from sending the cookie).
        session = ctx.session(request)
        if close_session(ctx.engine, request.cookies.get(COOKIE_NAME)) and session is not None:
            _audit(ctx.engine, ctx.clock.now(), f"console:{session.user.username}", ev.USER_LOGOUT,
                   user=session.user.username)
        response = RedirectResponse(f"/console/login?lang={ctx.lang(request)}", status_code=303)
        response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, secure=ctx.secure_cookie(request), httponly=True,
                               samesite="strict")
        return response


def _monthly_routes(router: APIRouter, ctx: ConsoleContext) -> None:
    settings, engine, clock = ctx.settings, ctx.engine, ctx.clock
    stale = settings.verified_max_age_days  # endpoints not proven for longer are action points

    def load_row(month: str) -> MonthlyReport | None:
        with read_session(engine) as s:
            return s.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()

    def no_report(request: Request, lang: str, session: Session, month: str) -> HTMLResponse:
        t = ctx.texts(lang)
        return ctx.notice(request, lang, t("No report for this month"),
                          t("There is no report for %(month)s yet. A coordinator, reviewer or admin can generate a "
                            "draft from the list.", month=month[:20]), 404, session,
                          link=(f"{LIST}?lang={lang}", t("Back to the monthly reports")))

    def signed_already(request: Request, lang: str, session: Session, row: MonthlyReport) -> HTMLResponse:
        t = ctx.texts(lang)
        return ctx.notice(request, lang, t("Already signed"),
                          t("The report of %(month)s was signed by %(by)s at %(when)s. A signed report is frozen and "
                            "cannot be signed again. Nothing was recorded.", month=row.month, by=row.signed_by or "",
                            when=t.when(row.signed_at)), 409, session,
                          link=(f"{LIST}/{row.month}?lang={lang}", t("Monthly report %(month)s", month=row.month)))

    def list_page(request: Request, lang: str, session: Session, status: int = 200, error: str | None = None,
                  month_value: str = "") -> HTMLResponse:
        with read_session(engine) as s:
            rows = list(s.exec(select(MonthlyReport).order_by(MonthlyReport.month.desc())))  # type: ignore[attr-defined]
        t = ctx.texts(lang)
        listed = [{"month": r.month, "status": t(STATUS_NAMES.get(r.status, r.status)), "signed_by": r.signed_by or "",
                   "signed_at": t.when(r.signed_at) if r.signed_at else "", "generated_at": t.when(r.generated_at)}
                  for r in rows]
        return ctx.render(request, "console_monthly_list.html", lang, status, title=t("Monthly reports"),
                          session=session, reports=listed, can_generate=session.user.role in GENERATING_ROLES,
                          error=error, month_value=month_value)

    @router.get(LIST, response_class=HTMLResponse)
    def monthly_list(request: Request) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        return list_page(request, lang, session)

    @router.post(LIST, response_class=HTMLResponse)
    async def generate(request: Request) -> Response:
        lang = ctx.lang(request)
        session, form, refusal = await ctx.posted(request, lang)
        if refusal is not None or session is None:
            return refusal or ctx.must_sign_in(request, lang)
        if session.user.role not in GENERATING_ROLES:
            return ctx.forbidden(request, lang, session, GENERATING_ROLES, N_("generate a monthly report"))
        month = form.get("month", "").strip()
        if not _MONTH.match(month):
            t = ctx.texts(lang)
            return await run_in_threadpool(list_page, request, lang, session, 400,
                                           t("“%(month)s” is not a month: write YYYY-MM, e.g. 2026-03.", month=month[:20]),
                                           month[:20])
        await run_in_threadpool(lambda: generate_monthly(engine, month, clock, settings.timezone, stale_after_days=stale))
        return RedirectResponse(f"{LIST}/{month}?lang={lang}", status_code=303)

    def open_report(request: Request, month: str) -> Response | tuple[str, Session, MonthlyReport]:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        row = load_row(month) if _MONTH.match(month) else None
        if row is None:
            return no_report(request, lang, session, month)
        return lang, session, row

    @router.get(LIST + "/{month}.html", response_class=HTMLResponse)
    def printable(request: Request, month: str) -> Response:
        found = open_report(request, month)
        if isinstance(found, Response):
            return found
        lang, _session, row = found
        embedded = embed_monthly(monthly_view(row), lang, settings.timezone)
        # Its own document (framed by the report page, or printed alone): it keeps the report's fonts.
        return HTMLResponse(embedded.document, headers={
            "Content-Security-Policy": embedded.csp.replace("frame-ancestors 'none'", "frame-ancestors 'self'"),
            "X-Frame-Options": "SAMEORIGIN", "Cache-Control": "no-store"})

    def report_page(request: Request, lang: str, session: Session, row: MonthlyReport, status: int = 200,
                    error: str | None = None, comment: str = "") -> HTMLResponse:
        t = ctx.texts(lang)
        can_sign = row.status == "draft" and session.user.role in SIGNING_ROLES
        return ctx.render(request, "console_monthly.html", lang, status, title=t("Monthly report %(month)s", month=row.month),
                          session=session, row=row, generated=t.when(row.generated_at),
                          signed=t.when(row.signed_at) if row.signed_at else "",
                          can_sign=can_sign, error=error, comment=comment, max_comment=MAX_COMMENT)

    @router.get(LIST + "/{month}", response_class=HTMLResponse)
    def monthly_page(request: Request, month: str) -> Response:
        found = open_report(request, month)
        if isinstance(found, Response):
            return found
        lang, session, row = found
        return report_page(request, lang, session, row)

    def sign_now(request: Request, lang: str, session: Session, month: str, form: dict[str, str]) -> Response:
        t = ctx.texts(lang)
        row = load_row(month) if _MONTH.match(month) else None
        if row is None:
            return no_report(request, lang, session, month)
        if row.status == "signed":
            return signed_already(request, lang, session, row)
        comment = form.get("comment", "").strip()
        if not comment or len(comment) > MAX_COMMENT:
            return report_page(request, lang, session, row, 400, t("Write a comment before signing. Nothing was "
                                                                   "recorded."), comment[:MAX_COMMENT])
        # The reviewer signs what the page showed: refuse when the figures moved since.
        now_hash = content_hash(compute_monthly_figures(engine, month, settings.timezone, stale_after_days=stale)
                                .model_dump(mode="json"))
        if form.get("content_hash") != now_hash:
            generate_monthly(engine, month, clock, settings.timezone, stale_after_days=stale)  # the new figures
            return ctx.notice(request, lang, t("The figures have changed"),
                              t("The figures of %(month)s changed since you opened the page (new events arrived). Read "
                                "them again before signing. Nothing was recorded.", month=month), 409, session,
                              link=(f"{LIST}/{month}?lang={lang}", t("Monthly report %(month)s", month=month)))
        try:
            sign_monthly(engine, month, session.user.username, comment, clock, settings.timezone, via="console",
                         stale_after_days=stale)
        except AlreadySigned:
            return signed_already(request, lang, session, load_row(month) or row)
        except PermissionDenied:  # deactivated or demoted between the page and the press
            return ctx.forbidden(request, lang, session, SIGNING_ROLES, N_("sign a monthly report"))
        except NotSignable as exc:  # the month is not over, a run is open, or it holds simulated checks
            return report_page(request, lang, session, row, 409, str(exc), comment[:MAX_COMMENT])
        return RedirectResponse(f"{LIST}/{month}?lang={lang}", status_code=303)

    @router.post(LIST + "/{month}/sign", response_class=HTMLResponse)
    async def sign(request: Request, month: str) -> Response:
        lang = ctx.lang(request)
        session, form, refusal = await ctx.posted(request, lang)
        if refusal is not None or session is None:
            return refusal or ctx.must_sign_in(request, lang)
        if session.user.role not in SIGNING_ROLES:
            return ctx.forbidden(request, lang, session, SIGNING_ROLES, N_("sign a monthly report"))
        return await run_in_threadpool(sign_now, request, lang, session, month, form)


def _safe_next(target: str) -> str:
    return target if _NEXT.match(target or "") and "//" not in target and ".." not in target else "/console"
