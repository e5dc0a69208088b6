"""What every console page shares: who is signed in (a server-side session, read on each
request), the form token of that session, the role checks, and rendering in the reader's
language (the ``staff`` catalogue, nl/fr/de/en).

GETs change nothing. A POST needs the session cookie (else 401), the form token bound to that
session (else 403; the sign-in form's token is bound to a pre-session cookie instead) and, for
anything that changes what the daemon does, a coordinator or an admin (else 403 naming the
roles that may). Database reads and Argon2 run in the thread pool:
routes are plain ``def`` functions, or ``async`` ones that only read the request body
themselves and hand the rest to ``run_in_threadpool``.
"""
from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from commtest.access import read_session_token
from commtest.clock import Clock
from commtest.i18n import DOMAIN_LANGUAGES, LANGUAGE_NAMES, N_, Texts
from commtest.models import Role
from commtest.settings import Settings
from commtest.users import OPERATING_ROLES, UserInfo
from sqlalchemy.engine import Engine
from web.ack import BodyTooLarge, read_small_form
from web.client_address import client_address, is_https
from web.csrf import CSRF_FIELD, CsrfSigner
from web.pages import TEMPLATES

COOKIE_NAME = "commtest_console"
COOKIE_PATH = "/console"
# Before a session there is no cookie to bind the sign-in form's token to: the sign-in page
# sets this random one (SameSite=Strict, so another site's page cannot post with it).
LOGIN_COOKIE_NAME = "commtest_login"
LOGIN_COOKIE_PATH = "/console/login"
CONSOLE_LANGUAGES = DOMAIN_LANGUAGES["staff"]
FORM_BYTES = 16_384  # a console form: a comment, a reason, an address
# Console pages may run our own script (the live board) and frame our own report pages.
CONSOLE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; connect-src 'self'; "
               "frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")

ROLE_NAMES = {"viewer": N_("viewer"), "coordinator": N_("coordinator"), "reviewer": N_("reviewer"),
              "admin": N_("admin")}


@dataclass(frozen=True)
class Session:
    user: UserInfo
    cookie: str  # the cookie's value, to which form tokens are bound


@dataclass
class ConsoleContext:
    settings: Settings
    engine: Engine
    clock: Clock
    signer: CsrfSigner

    # -- language and rendering ---------------------------------------------------------
    def lang(self, request: Request) -> str:
        for tag in (request.query_params.get("lang"), self.settings.default_language):
            base = (tag or "").split("-")[0].split("_")[0].lower()
            if base in CONSOLE_LANGUAGES:
                return base
        return "en"

    def texts(self, lang: str) -> Texts:
        return Texts("staff", lang, self.settings.timezone)

    def render(self, request: Request, template: str, lang: str, status: int = 200, *, title: str,
               session: Session | None = None, csp: str | None = None, **context: Any) -> HTMLResponse:
        t = self.texts(lang)
        response = TEMPLATES.TemplateResponse(
            request, template,
            {"lang": lang, **t.jinja_globals(), "t": t, "title": title, "session": session,
             "role_name": t(ROLE_NAMES[session.user.role.value]) if session else "",
             "may_operate": bool(session and session.user.role in OPERATING_ROLES),
             "languages": [(c, LANGUAGE_NAMES[c]) for c in CONSOLE_LANGUAGES],
             "switch_base": request.url.path, "here": request.url.path,
             "form_token": self.form_token(session) if session else "", **context},
            status_code=status,
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["Content-Security-Policy"] = csp or CONSOLE_CSP
        return response

    def notice(self, request: Request, lang: str, title: str, text: str, status: int, session: Session | None = None,
               link: tuple[str, str] | None = None) -> HTMLResponse:
        t = self.texts(lang)
        return self.render(request, "console_message.html", lang, status, title=title, session=session, text=text,
                           link=link or (f"/console?lang={lang}", t("Back to the overview")))

    def forbidden(self, request: Request, lang: str, session: Session, roles: Iterable[Role], action: str) -> HTMLResponse:
        t = self.texts(lang)
        names = f" {t('or')} ".join(t(ROLE_NAMES[r.value]) for r in roles)
        return self.notice(request, lang, t("Not allowed"),
                           t("Your role (%(role)s) does not allow this: only %(roles)s may %(action)s. Nothing was "
                             "recorded.", role=t(ROLE_NAMES[session.user.role.value]), roles=names, action=t(action)),
                           403, session)

    def login_redirect(self, request: Request, lang: str) -> RedirectResponse:
        return RedirectResponse(f"/console/login?lang={lang}&next={request.url.path}", status_code=303)

    def must_sign_in(self, request: Request, lang: str) -> HTMLResponse:
        t = self.texts(lang)
        return self.notice(request, lang, t("Sign-in required"), t("Sign in to the console first. Nothing was recorded."),
                           401, link=(f"/console/login?lang={lang}", t("Go to the sign-in page")))

    def bad_form(self, request: Request, lang: str, session: Session) -> HTMLResponse:
        t = self.texts(lang)
        return self.notice(request, lang, t("Please try again"),
                           t("This form is too old or did not come from the console. Open the page again and submit "
                             "it from there. Nothing was recorded."), 403, session)

    # -- sessions and forms --------------------------------------------------------------
    def session(self, request: Request) -> Session | None:
        """The signed-in user of this request (blocking: a database read)."""
        cookie = request.cookies.get(COOKIE_NAME)
        row = read_session_token(self.engine, cookie, self.clock.now())
        return Session(row.user, cookie or "") if row is not None else None

    def form_token(self, session: Session) -> str:
        return self.signer.issue("console-form:" + hashlib.sha256(session.cookie.encode()).hexdigest())

    def check_form(self, session: Session, value: object) -> bool:
        binding = "console-form:" + hashlib.sha256(session.cookie.encode()).hexdigest()
        return isinstance(value, str) and self.signer.check(binding, value)

    # -- the sign-in form: a token bound to a pre-session cookie ------------------------------
    def login_cookie(self, request: Request) -> tuple[str, bool]:
        """The browser's pre-session cookie, or a new one (True: set it on the response)."""
        value = request.cookies.get(LOGIN_COOKIE_NAME, "")
        if 32 <= len(value) <= 128:
            return value, False
        return secrets.token_urlsafe(32), True

    def login_token(self, cookie: str) -> str:
        return self.signer.issue("console-login:" + hashlib.sha256(cookie.encode()).hexdigest())

    def check_login_form(self, request: Request, value: object) -> bool:
        cookie = request.cookies.get(LOGIN_COOKIE_NAME, "")
        binding = "console-login:" + hashlib.sha256(cookie.encode()).hexdigest()
        return bool(cookie) and isinstance(value, str) and self.signer.check(binding, value)

    def set_login_cookie(self, request: Request, response: HTMLResponse, cookie: str) -> None:
        response.set_cookie(LOGIN_COOKIE_NAME, cookie, path=LOGIN_COOKIE_PATH, secure=self.secure_cookie(request),
                            httponly=True, samesite="strict")

    async def posted(self, request: Request, lang: str, limit: int = FORM_BYTES
                     ) -> tuple[Session | None, dict[str, str], HTMLResponse | None]:
        """Session and form of a POST, or the page to answer instead: 401 not signed in, 413
        too large (refused before parsing), 403 a missing or foreign form token."""
        session = await run_in_threadpool(self.session, request)
        if session is None:
            return None, {}, self.must_sign_in(request, lang)
        try:
            form = await read_small_form(request, limit)
        except BodyTooLarge:
            t = self.texts(lang)
            return session, {}, self.notice(request, lang, t("Too large"),
                                            t("This form is larger than the console accepts. Nothing was recorded."),
                                            413, session)
        if not self.check_form(session, form.get(CSRF_FIELD)):
            return session, form, self.bad_form(request, lang, session)
        return session, form, None

    def client(self, request: Request) -> str:
        return client_address(request, self.settings)

    def secure_cookie(self, request: Request) -> bool:
        return is_https(request, self.settings)


def actor_of(session: Session) -> str:
    return f"console:{session.user.username}"


def may_operate(session: Session) -> bool:
    return session.user.role in OPERATING_ROLES
