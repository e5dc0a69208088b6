"""The console: staff sign in, list the monthly reports, generate a draft, read it, sign it off.

Server-rendered forms only (no JavaScript). Every POST needs the session cookie (else 401)
and the form token bound to that session (else 403); the role is checked before anything is
written. GETs change nothing. Pages are in nl, fr, de or en (``?lang=``).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import select

from commtest.clock import Clock
from commtest.db import session_scope
from commtest.errors import PermissionDenied
from commtest.models import MonthlyReport, Role
from commtest.settings import Settings
from commtest.users import check_password
from reports.monthly import SIGNING_ROLES, AlreadySigned, NotSignable, content_hash, generate_monthly, monthly_view, sign_monthly
from reports.monthly_figures import compute_monthly_figures
from web.console_report import embed_monthly
from web.console_session import COOKIE_NAME, COOKIE_PATH, Session, SessionKeeper
from web.csrf import CSRF_FIELD, CsrfSigner
from web.i18n import CONSOLE_LANGUAGES, LANGUAGE_NAMES, console_texts, format_when, pick_console_language
from web.pages import TEMPLATES
from web.ratelimit import SlidingWindowLimiter

LOGIN_ATTEMPTS_PER_MINUTE = 10  # per source address; a person mistypes a few times, a script a lot more
GENERATING_ROLES = (Role.coordinator, Role.reviewer, Role.admin)
MAX_COMMENT = 4000
LIST = "/console/reports/monthly"
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
_NEXT = re.compile(r"^/console/[A-Za-z0-9/_.-]*$")  # only back into the console: no open redirect


def console_router(settings: Settings, engine: Engine, clock: Clock, signer: CsrfSigner) -> APIRouter:
    router = APIRouter()
    sessions = SessionKeeper(signer, engine)
    limiter = SlidingWindowLimiter(LOGIN_ATTEMPTS_PER_MINUTE, clock)
    secure_cookie = settings.public_base_url.lower().startswith("https://")

    def lang_of(request: Request) -> str:
        return pick_console_language(request.query_params.get("lang"), settings.default_language)

    def when(at: Any, lang: str) -> str:
        return format_when(at, settings.timezone, lang)

    def render(request: Request, template: str, lang: str, status: int = 200, *, title: str,
               session: Session | None = None, csp: str | None = None, **context: Any) -> HTMLResponse:
        response = TEMPLATES.TemplateResponse(
            request, template,
            {"lang": lang, "t": console_texts(lang), "title": title, "session": session,
             "role_name": console_texts(lang)[f"role_{session.user.role.value}"] if session else "",
             "languages": [(c, LANGUAGE_NAMES[c]) for c in CONSOLE_LANGUAGES], "switch_base": request.url.path,
             "logout_token": sessions.form_token(session) if session else "", **context},
            status_code=status,
        )
        response.headers["Cache-Control"] = "no-store"
        if csp:
            response.headers["Content-Security-Policy"] = csp
        return response

    def notice(request: Request, lang: str, key: str, status: int, session: Session | None = None,
               link: tuple[str, str] | None = None, **fmt: str) -> HTMLResponse:
        t = console_texts(lang)
        return render(request, "console_message.html", lang, status, title=t[f"{key}_title"], session=session,
                      text=t[f"{key}_text"].format(**fmt), link=link or (f"{LIST}?lang={lang}", t["back"]))

    def roles_text(roles: Iterable[Role], lang: str) -> str:
        t = console_texts(lang)
        return f" {t['or']} ".join(t[f"role_{r.value}"] for r in roles)

    def forbidden(request: Request, lang: str, session: Session, roles: Iterable[Role], action: str) -> HTMLResponse:
        t = console_texts(lang)
        return notice(request, lang, "forbidden", 403, session, role=t[f"role_{session.user.role.value}"],
                      roles=roles_text(roles, lang), action=t[action])

    def login_redirect(request: Request, lang: str) -> RedirectResponse:
        return RedirectResponse(f"/console/login?lang={lang}&next={request.url.path}", status_code=303)

    def must_sign_in(request: Request, lang: str) -> HTMLResponse:
        return notice(request, lang, "login_required", 401,
                      link=(f"/console/login?lang={lang}", console_texts(lang)["sign_in_link"]))

    async def posted(request: Request, lang: str) -> tuple[Session | None, dict[str, Any], HTMLResponse | None]:
        """Session and form of a POST, or the refusal page (401 not signed in, 403 bad form token)."""
        session = sessions.read(request.cookies.get(COOKIE_NAME))
        if session is None:
            return None, {}, must_sign_in(request, lang)
        form = dict(await request.form())
        if not sessions.check_form_token(session, form.get(CSRF_FIELD)):
            return session, form, notice(request, lang, "console_csrf", 403, session)
        return session, form, None

    def load_row(month: str) -> MonthlyReport | None:
        with session_scope(engine) as s:
            return s.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()

    # --- sign in / out -------------------------------------------------------------------
    @router.get("/console", response_class=HTMLResponse)
    def home(request: Request) -> Response:
        return RedirectResponse(f"{LIST}?lang={lang_of(request)}", status_code=303)

    @router.get("/console/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = LIST) -> Response:
        lang = lang_of(request)
        if sessions.read(request.cookies.get(COOKIE_NAME)) is not None:
            return RedirectResponse(f"{_safe_next(next)}?lang={lang}", status_code=303)
        t = console_texts(lang)
        return render(request, "console_login.html", lang, title=t["login_title"], next=_safe_next(next),
                      error=None, username="")

    @router.post("/console/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        lang = lang_of(request)
        t = console_texts(lang)
        if not limiter.allow(request.client.host if request.client else "unknown"):
            limited = notice(request, lang, "ratelimited", 429, link=(f"/console/login?lang={lang}", t["sign_in_link"]))
            limited.headers["Retry-After"] = "60"
            return limited
        form = await request.form()
        username, password, target = (str(form.get(k) or "") for k in ("username", "password", "next"))
        username = username.strip().lower()[:100]
        if not (username and password and check_password(engine, username, password)):
            return render(request, "console_login.html", lang, 401, title=t["login_title"], next=_safe_next(target),
                          error=t["login_failed"], username=username)
        response = RedirectResponse(f"{_safe_next(target)}?lang={lang}", status_code=303)
        response.set_cookie(COOKIE_NAME, sessions.issue(username), max_age=int(sessions.lifetime.total_seconds()),
                            path=COOKIE_PATH, secure=secure_cookie, httponly=True, samesite="strict")
        return response

    @router.post("/console/logout", response_class=HTMLResponse)
    def logout(request: Request) -> Response:
        # No form token needed: signing out is harmless, and the cookie is SameSite=Strict anyway.
        response = RedirectResponse(f"/console/login?lang={lang_of(request)}", status_code=303)
        response.delete_cookie(COOKIE_NAME, path=COOKIE_PATH, secure=secure_cookie, httponly=True, samesite="strict")
        return response

    # --- monthly reports -----------------------------------------------------------------
    def list_page(request: Request, lang: str, session: Session, status: int = 200, error: str | None = None,
                  month_value: str = "") -> HTMLResponse:
        with session_scope(engine) as s:
            rows = list(s.exec(select(MonthlyReport).order_by(MonthlyReport.month.desc())))  # type: ignore[attr-defined]
        t = console_texts(lang)
        listed = [{"month": r.month, "status": t[f"status_{r.status}"], "signed_by": r.signed_by or "",
                   "signed_at": when(r.signed_at, lang) if r.signed_at else "",
                   "generated_at": when(r.generated_at, lang)} for r in rows]
        return render(request, "console_monthly_list.html", lang, status, title=t["monthly_title"], session=session,
                      reports=listed, can_generate=session.user.role in GENERATING_ROLES,
                      form_token=sessions.form_token(session), error=error, month_value=month_value)

    @router.get(LIST, response_class=HTMLResponse)
    def monthly_list(request: Request) -> Response:
        lang = lang_of(request)
        session = sessions.read(request.cookies.get(COOKIE_NAME))
        if session is None:
            return login_redirect(request, lang)
        return list_page(request, lang, session)

    @router.post(LIST, response_class=HTMLResponse)
    async def generate(request: Request) -> Response:
        lang = lang_of(request)
        session, form, refusal = await posted(request, lang)
        if refusal is not None or session is None:
            return refusal or must_sign_in(request, lang)
        if session.user.role not in GENERATING_ROLES:
            return forbidden(request, lang, session, GENERATING_ROLES, "action_generate")
        month = str(form.get("month") or "").strip()
        if not _MONTH.match(month):
            return list_page(request, lang, session, 400, console_texts(lang)["bad_month"].format(month=month[:20]),
                             month[:20])
        generate_monthly(engine, month, clock, settings.timezone)
        return RedirectResponse(f"{LIST}/{month}?lang={lang}", status_code=303)

    def open_report(request: Request, month: str) -> Response | tuple[str, Session, MonthlyReport]:
        """The logged-in reader and the month's report, or the page to answer instead."""
        lang = lang_of(request)
        session = sessions.read(request.cookies.get(COOKIE_NAME))
        if session is None:
            return login_redirect(request, lang)
        row = load_row(month) if _MONTH.match(month) else None
        if row is None:
            return notice(request, lang, "noreport", 404, session, month=month[:20])
        return lang, session, row

    @router.get(LIST + "/{month}.html", response_class=HTMLResponse)
    def printable(request: Request, month: str) -> Response:
        found = open_report(request, month)
        if isinstance(found, Response):
            return found
        lang, session, row = found
        embedded = embed_monthly(monthly_view(row), lang, settings.timezone)
        return HTMLResponse(embedded.document, headers={"Content-Security-Policy": embedded.csp,
                                                        "Cache-Control": "no-store"})

    def report_page(request: Request, lang: str, session: Session, row: MonthlyReport, status: int = 200,
                    error: str | None = None, comment: str = "") -> HTMLResponse:
        t = console_texts(lang)
        embedded = embed_monthly(monthly_view(row), lang, settings.timezone)
        can_sign = row.status == "draft" and session.user.role in SIGNING_ROLES
        return render(request, "console_monthly.html", lang, status, title=t["report_title"].format(month=row.month),
                      session=session, csp=embedded.csp, report_style=embedded.head_style, report_body=embedded.body,
                      row=row, generated=when(row.generated_at, lang),
                      signed=when(row.signed_at, lang) if row.signed_at else "", can_sign=can_sign,
                      form_token=sessions.form_token(session) if can_sign else "", error=error, comment=comment,
                      max_comment=MAX_COMMENT)

    @router.get(LIST + "/{month}", response_class=HTMLResponse)
    def monthly_page(request: Request, month: str) -> Response:
        found = open_report(request, month)
        if isinstance(found, Response):
            return found
        lang, session, row = found
        return report_page(request, lang, session, row)

    @router.post(LIST + "/{month}/sign", response_class=HTMLResponse)
    async def sign(request: Request, month: str) -> Response:
        lang = lang_of(request)
        session, form, refusal = await posted(request, lang)
        if refusal is not None or session is None:
            return refusal or must_sign_in(request, lang)
        if session.user.role not in SIGNING_ROLES:
            return forbidden(request, lang, session, SIGNING_ROLES, "action_sign")
        row = load_row(month) if _MONTH.match(month) else None
        if row is None:
            return notice(request, lang, "noreport", 404, session, month=month[:20])
        back = (f"{LIST}/{month}?lang={lang}", console_texts(lang)["report_title"].format(month=month))
        if row.status == "signed":
            return notice(request, lang, "signed_already", 409, session, back, month=month, by=row.signed_by or "",
                          when=when(row.signed_at, lang))
        comment = str(form.get("comment") or "").strip()
        if not comment or len(comment) > MAX_COMMENT:
            return report_page(request, lang, session, row, 400, console_texts(lang)["comment_required"], comment[:MAX_COMMENT])
        # The reviewer signs what the page showed: refuse when the figures moved since.
        now_hash = content_hash(compute_monthly_figures(engine, month, settings.timezone).model_dump(mode="json"))
        if form.get("content_hash") != now_hash:
            generate_monthly(engine, month, clock, settings.timezone)  # so the page shows the new figures
            return notice(request, lang, "changed", 409, session, back, month=month)
        try:
            sign_monthly(engine, month, session.user.username, comment, clock, settings.timezone, via="console")
        except AlreadySigned:
            row = load_row(month) or row
            return notice(request, lang, "signed_already", 409, session, back, month=month, by=row.signed_by or "",
                          when=when(row.signed_at, lang))
        except PermissionDenied:  # deactivated or demoted between the page and the press
            return forbidden(request, lang, session, SIGNING_ROLES, "action_sign")
        except NotSignable as exc:  # the month is not over, a run is open, or it holds simulated checks
            return report_page(request, lang, session, row, 409, str(exc), comment[:MAX_COMMENT])
        return RedirectResponse(f"{LIST}/{month}?lang={lang}", status_code=303)

    return router


def _safe_next(target: str) -> str:
    return target if _NEXT.match(target or "") and "//" not in target and ".." not in target else LIST
