"""The console: sign in, list and generate monthly reports, read one, sign it off (or be refused)."""
from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from commtest.clock import UTC, FrozenClock
from commtest.db import session_scope
from commtest.models import Event, MonthlyReport
from commtest.settings import Settings
from commtest.users import add_user
from reports.monthly import generate_monthly, monthly_view
from reports.render import render_html
from tests.reports.builder import LogBuilder
from tests.web.conftest import web_settings
from web.app import create_app
from web.console import LOGIN_ATTEMPTS_PER_MINUTE
from web.console_auth import COOKIE_NAME, LOGIN_COOKIE_NAME

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
PASSWORD = "fictional-pass-phrase-42"
REPORT = "/console/reports/monthly/2026-03"
NNBSP = "\u202f"  # Babel (CLDR) puts a narrow no-break space before AM/PM


@dataclass
class Console:
    engine: Engine
    clock: FrozenClock
    settings: Settings
    client: TestClient
    log: LogBuilder
    run_id: int

    def login(self, username: str, password: str = PASSWORD) -> Response:
        return self.client.post("/console/login?lang=en", data={"username": username, "password": password,
                                                                 "csrf": login_token(self.client)},
                                follow_redirects=False)

    def token(self, path: str = REPORT) -> str:
        return field(self.client.get(path + "?lang=en").text, "csrf")


def login_token(client: TestClient) -> str:
    """The form token of the sign-in page, as a browser gets it (with its pre-session cookie)."""
    return field(client.get("/console/login?lang=en").text, "csrf")


def field(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"the page has no {name} field"
    return m.group(1)


def signed_events(engine: Engine) -> int:
    with session_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(Event).where(Event.kind == "report.signed")).one())


def row(engine: Engine, month: str = "2026-03") -> MonthlyReport | None:
    with session_scope(engine) as s:
        return s.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()


def make_console(engine: Engine, clock: FrozenClock, **extra: object) -> Iterator[Console]:
    log = LogBuilder(engine).directory()
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=120)
    log.ping(run, "NL-NCC", "email", sent_at=T0, response_s=1200)
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, response_s=40)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="bounced")
    log.close(run)
    for name, role in (("rvw", "reviewer"), ("vera", "viewer"), ("cora", "coordinator"), ("adam", "admin")):
        add_user(engine, name, role, clock, display_name=f"Fictional {role}", password=PASSWORD)
    generate_monthly(engine, "2026-03", clock)
    settings = web_settings(engine, **extra)
    base = "https://testserver" if str(extra.get("public_base_url", "")).startswith("https") else "http://testserver"
    with TestClient(create_app(settings, engine, clock), base_url=base) as client:
        yield Console(engine, clock, settings, client, log, run)


@pytest.fixture
def console(engine: Engine, clock: FrozenClock) -> Iterator[Console]:
    yield from make_console(engine, clock)


def sign(c: Console, comment: str = "Read; NL phone to be fixed.", **override: str | None) -> Response:
    page = c.client.get(REPORT + "?lang=en").text
    data = {"csrf": field(page, "csrf"), "content_hash": field(page, "content_hash"), "comment": comment}
    for key, value in override.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return c.client.post(REPORT + "/sign?lang=en", data=data, follow_redirects=False)


# --- sign in --------------------------------------------------------------------------------


def test_the_right_password_signs_in_with_a_strict_httponly_cookie_for_eight_hours(console: Console) -> None:
    r = console.login("rvw")
    assert r.status_code == 303 and r.headers["location"] == "/console?lang=en"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age=28800" in cookie and "Path=/console" in cookie and "Secure" not in cookie
    page = console.client.get("/console/reports/monthly?lang=en")
    assert page.status_code == 200 and "Signed in as rvw (reviewer)" in page.text


def test_the_cookie_is_secure_when_the_public_url_is_https(engine: Engine, clock: FrozenClock) -> None:
    for c in make_console(engine, clock, public_base_url="https://commtest.example"):
        assert "Secure" in c.login("rvw").headers["set-cookie"]
        assert c.client.get("/console/reports/monthly").status_code == 200


@pytest.mark.parametrize("username,password", [("rvw", "wrong-password-123"), ("nobody", PASSWORD), ("", "")])
def test_a_wrong_login_is_401_on_the_same_page_with_an_error_and_no_cookie(console: Console, username: str,
                                                                        password: str) -> None:
    r = console.login(username, password)
    assert r.status_code == 401 and "set-cookie" not in r.headers
    assert "Wrong user name or password, or the account is deactivated." in r.text
    assert 'name="password"' in r.text and "Sign in to the console" in r.text


def test_login_attempts_are_rate_limited_per_address(console: Console) -> None:
    codes = [console.login(f"nobody{i}", "x").status_code for i in range(LOGIN_ATTEMPTS_PER_MINUTE)]
    assert codes == [401] * LOGIN_ATTEMPTS_PER_MINUTE
    r = console.login("rvw")  # even the right password waits: the limit is per address
    assert r.status_code == 429 and r.headers["retry-after"] == "60" and "Too many requests" in r.text
    console.clock.advance(seconds=61)
    assert console.login("rvw").status_code == 303


def test_anonymous_pages_redirect_to_the_login_and_posts_are_401(console: Console) -> None:
    for path in ("/console/reports/monthly", REPORT, REPORT + ".html"):
        r = console.client.get(path + "?lang=fr", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/console/login?lang=fr&next={path}"
    r = console.client.post(REPORT + "/sign?lang=en", data={"comment": "x"}, follow_redirects=False)
    assert r.status_code == 401 and "Sign in to the console first. Nothing was recorded." in r.text
    assert console.client.post("/console/reports/monthly", data={"month": "2026-02"}).status_code == 401
    assert signed_events(console.engine) == 0 and row(console.engine, "2026-02") is None


def test_after_login_the_browser_goes_back_to_the_page_it_asked_for_but_never_elsewhere(console: Console) -> None:
    r = console.client.post("/console/login?lang=de", data={"username": "rvw", "password": PASSWORD, "next": REPORT,
                                                             "csrf": login_token(console.client)},
                            follow_redirects=False)
    assert r.headers["location"] == f"{REPORT}?lang=de"
    console.client.cookies.clear()
    for target in ("https://evil.example/", "//evil.example", "/console/../ack"):
        r = console.client.post("/console/login", data={"username": "rvw", "password": PASSWORD, "next": target,
                                                        "csrf": login_token(console.client)},
                                follow_redirects=False)
        assert r.headers["location"].startswith("/console?"), target
        console.client.cookies.clear()


def test_the_sign_in_form_carries_a_token_tied_to_a_strict_httponly_pre_session_cookie(console: Console) -> None:
    r = console.client.get("/console/login?lang=en")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{LOGIN_COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/console/login" in cookie and not cookie.startswith(f"{COOKIE_NAME}=")
    assert field(r.text, "csrf")
    again = console.client.get("/console/login?lang=en")  # the browser keeps its pre-session cookie
    assert "set-cookie" not in again.headers and field(again.text, "csrf")


def _login_post(client: TestClient, csrf: str | None) -> Response:
    data = {"username": "rvw", "password": PASSWORD}
    if csrf is not None:
        data["csrf"] = csrf
    return client.post("/console/login?lang=en", data=data, follow_redirects=False)


def _signed_in(client: TestClient) -> bool:
    return client.get("/console/reports/monthly", follow_redirects=False).status_code == 200


def _logins(engine: Engine) -> list[str]:
    with session_scope(engine) as s:
        return [e.kind for e in s.exec(select(Event).where(Event.kind.in_(("user.login", "user.login_failed"))))]  # type: ignore[attr-defined]


@pytest.mark.parametrize("csrf", [None, "", "1776150000.0000", "forged"])
def test_a_login_without_its_form_token_is_403_and_signs_nobody_in(console: Console, csrf: str | None) -> None:
    login_token(console.client)  # the browser has its pre-session cookie, but posts no (valid) token
    r = _login_post(console.client, csrf)
    assert r.status_code == 403 and COOKIE_NAME not in r.headers.get("set-cookie", "")
    assert "This sign-in form is too old or did not come from the console. Sign in again on this page." in r.text
    assert not _signed_in(console.client) and _logins(console.engine) == []  # no attempt, not even a failure
    # The page answered carries a fresh token: signing in from it works.
    r = _login_post(console.client, field(r.text, "csrf"))
    assert r.status_code == 303 and r.headers["set-cookie"].startswith(f"{COOKIE_NAME}=") and _signed_in(console.client)


def test_a_cross_site_login_post_is_403_and_signs_nobody_in(console: Console) -> None:
    # Another site's page posts the form with a token its author fetched with their own
    # pre-session cookie; the victim's browser sends no such cookie (SameSite=Strict).
    attacker = login_token(console.client)
    console.client.cookies.clear()
    r = _login_post(console.client, attacker)
    assert r.status_code == 403 and COOKIE_NAME not in r.headers.get("set-cookie", "")
    assert not _signed_in(console.client)
    # Nor does a token of one browser work with another browser's pre-session cookie.
    login_token(console.client)
    r = _login_post(console.client, attacker)
    assert r.status_code == 403 and not _signed_in(console.client) and _logins(console.engine) == []


def test_an_old_sign_in_form_is_refused(console: Console) -> None:
    token = login_token(console.client)
    console.clock.advance(hours=13)
    assert _login_post(console.client, token).status_code == 403 and not _signed_in(console.client)


def test_a_session_ends_after_eight_hours(console: Console) -> None:
    console.login("rvw")
    console.clock.advance(hours=7, minutes=59)
    assert console.client.get("/console/reports/monthly", follow_redirects=False).status_code == 200
    console.clock.advance(minutes=2)
    assert console.client.get("/console/reports/monthly", follow_redirects=False).status_code == 303


def test_a_forged_or_tampered_cookie_is_not_a_session(console: Console) -> None:
    value = console.login("vera").cookies[COOKIE_NAME]
    console.client.cookies.clear()
    admin = base64.urlsafe_b64encode(b"adam").decode().rstrip("=")
    for forged in (value[:-1] + ("A" if value[-1] != "A" else "B"), "garbage", f"{admin}.1.{'0' * 64}", "x" * 43):
        console.client.cookies.set(COOKIE_NAME, forged, path="/console")
        assert console.client.get("/console/reports/monthly", follow_redirects=False).status_code == 303, forged
        console.client.cookies.clear()


def test_signing_out_ends_the_session_on_the_server_so_a_copied_cookie_is_refused(console: Console) -> None:
    copied = console.login("rvw").cookies[COOKIE_NAME]
    r = console.client.post("/console/logout?lang=nl", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/login?lang=nl"
    assert f'{COOKIE_NAME}=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert console.client.get("/console/reports/monthly", follow_redirects=False).status_code == 303
    console.client.cookies.set(COOKIE_NAME, copied, path="/console")  # the cookie, copied before signing out
    assert console.client.get("/console/reports/monthly", follow_redirects=False).status_code == 303
    r = console.client.post("/console/reports/monthly?lang=en", data={"month": "2026-02"}, follow_redirects=False)
    assert r.status_code == 401 and row(console.engine, "2026-02") is None


# --- listing and generating -------------------------------------------------------------------


def test_the_list_shows_each_month_with_its_state_and_who_signed(console: Console) -> None:
    console.login("rvw")
    assert sign(console).status_code == 303
    generate_monthly(console.engine, "2026-02", console.clock)
    page = console.client.get("/console/reports/monthly?lang=en").text
    assert page.index("2026-03") < page.index("2026-02")  # newest first
    assert "Signed</td><td>14 Apr 2026 10:00 CEST</td><td>rvw</td><td>14 Apr 2026 10:00 CEST" in page
    assert "Draft</td>" in page and 'href="/console/reports/monthly/2026-02?lang=en"' in page


def test_a_coordinator_generates_a_draft_for_a_month(console: Console) -> None:
    console.login("cora")
    page = console.client.get("/console/reports/monthly?lang=en").text
    r = console.client.post("/console/reports/monthly?lang=en", data={"csrf": field(page, "csrf"), "month": "2026-02"},
                            follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/console/reports/monthly/2026-02?lang=en"
    stored = row(console.engine, "2026-02")
    assert stored is not None and stored.status == "draft" and stored.data["month"] == "2026-02"


def test_a_bad_month_is_refused_with_the_reason(console: Console) -> None:
    console.login("cora")
    page = console.client.get("/console/reports/monthly?lang=en").text
    r = console.client.post("/console/reports/monthly?lang=en", data={"csrf": field(page, "csrf"), "month": "2026-13"})
    assert r.status_code == 400 and "“2026-13” is not a month: write YYYY-MM, e.g. 2026-03." in r.text
    assert row(console.engine, "2026-13") is None


def test_a_viewer_sees_no_generate_form_and_cannot_generate(console: Console) -> None:
    console.login("vera")
    page = console.client.get("/console/reports/monthly?lang=en").text
    assert "Generate a draft" not in page and "2026-03" in page
    r = console.client.post("/console/reports/monthly?lang=en", data={"csrf": field(page, "csrf"), "month": "2026-02"})
    assert r.status_code == 403
    assert "Your role (viewer) does not allow this: only coordinator or reviewer or admin may generate" in r.text
    assert row(console.engine, "2026-02") is None


# --- the report page --------------------------------------------------------------------------


def test_the_report_page_frames_the_report_which_keeps_its_own_styles_and_allows_exactly_them(console: Console) -> None:
    console.login("vera")
    r = console.client.get(REPORT + "?lang=en")
    assert r.status_code == 200
    assert "Monthly report 2026-03" in r.text and "Draft generated at 14 Apr 2026 10:00 CEST" in r.text
    # The report is its own document in a frame: the console's fonts and styles do not reach it.
    assert f'<iframe class="report-frame" src="{REPORT}.html?lang=en"' in r.text and "<svg" not in r.text
    assert "frame-src 'self'" in r.headers["content-security-policy"]
    doc = console.client.get(REPORT + ".html?lang=en")
    assert doc.headers["x-frame-options"] == "SAMEORIGIN" and "/static/console.css" not in doc.text
    # The figures of the report: 4 checks, 3 answered, 75 %; one row per organisation x channel.
    totals = re.search(r'<table class="meta">(.*?)</table>', doc.text, re.S)
    assert totals and re.findall(r'class="num">([^<]+)<', totals.group(1))[:2] == ["4", "3 (75.0%)"]
    assert "Nationaal Crisiscentrum / Centre de Crise National" in doc.text and "Nationaal CrisisCentrum" in doc.text
    assert doc.text.count("<svg") == 3  # within target; e-mail and telephone response times
    assert "<script" not in doc.text
    csp = doc.headers["content-security-policy"]
    head_style = re.search(r"<head>.*?<style>(.*?)</style>", doc.text, re.S)
    assert head_style is not None
    digest = base64.b64encode(hashlib.sha256(head_style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp and "unsafe-inline" not in csp and "script-src" not in csp
    assert csp.startswith("default-src 'none'; style-src 'self' 'sha256-") and "frame-ancestors 'self'" in csp


def test_the_printable_version_is_the_report_of_the_command_line(console: Console) -> None:
    console.login("vera")
    r = console.client.get(REPORT + ".html?lang=nl")
    stored = row(console.engine)
    assert stored is not None
    cli = render_html(monthly_view(stored), "nl", console.settings.timezone)
    uuid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # pygal chart ids
    scripts = re.compile(r"<script\b.*?</script>", re.S)
    assert r.status_code == 200 and uuid.sub("", r.text) == uuid.sub("", scripts.sub("", cli))
    assert r.headers["cache-control"] == "no-store" and "sha256-" in r.headers["content-security-policy"]


def test_a_month_without_a_report_is_a_404_page(console: Console) -> None:
    console.login("rvw")
    for path in ("/console/reports/monthly/2025-01", "/console/reports/monthly/not-a-month"):
        r = console.client.get(path + "?lang=en")
        assert r.status_code == 404 and "No report for this month" in r.text


def test_every_console_page_has_the_security_headers_and_speaks_the_language(console: Console) -> None:
    pages = [console.client.get("/console/login?lang=de")]
    console.login("rvw")
    pages += [console.client.get("/console/reports/monthly?lang=fr"), console.client.get(REPORT + "?lang=nl")]
    for r in pages:
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert 'lang="de"' in pages[0].text and "An der Konsole anmelden" in pages[0].text
    assert "Rapports mensuels" in pages[1].text and '<a href="/console/reports/monthly?lang=en"' in pages[1].text
    assert "Maandrapport 2026-03" in pages[2].text and "Dit rapport ondertekenen" in pages[2].text


# --- signing off ------------------------------------------------------------------------------


def test_a_reviewer_signs_with_a_comment_and_the_report_is_frozen(console: Console) -> None:
    console.login("rvw")
    page = console.client.get(REPORT + "?lang=en").text
    assert "Sign off this report" in page
    console.clock.advance(minutes=5)
    r = sign(console, "Read; NL phone <to be> fixed.")
    assert r.status_code == 303 and r.headers["location"] == f"{REPORT}?lang=en"
    stored = row(console.engine)
    assert stored is not None and stored.status == "signed"
    assert (stored.signed_by, stored.comment) == ("rvw", "Read; NL phone <to be> fixed.")
    assert stored.signed_at is not None and stored.signed_at.replace(tzinfo=UTC) == console.clock.now()
    with session_scope(console.engine) as s:
        event = s.exec(select(Event).where(Event.kind == "report.signed")).one()
    assert event.data["by"] == "rvw" and event.data["content_hash"] == stored.content_hash
    shown = console.client.get(REPORT + "?lang=en").text
    assert "Signed by rvw at 14 Apr 2026 10:05 CEST." in shown
    assert "Comment: Read; NL phone &lt;to be&gt; fixed." in shown and "Sign off this report" not in shown
    # Frozen: a test of March that closes later does not move the figures.
    late = console.log.run(T0 + timedelta(days=1))
    console.log.ping(late, "BE-NCCN", "email", sent_at=T0 + timedelta(days=1), response_s=30)
    console.log.close(late)
    assert generate_monthly(console.engine, "2026-03", console.clock).data["totals"]["checks"] == 4


def test_an_admin_may_sign_too(console: Console) -> None:
    console.login("adam")
    assert sign(console).status_code == 303 and signed_events(console.engine) == 1


@pytest.mark.parametrize("username,role", [("vera", "viewer"), ("cora", "coordinator")])
def test_a_viewer_or_coordinator_sees_no_form_and_their_post_is_refused(console: Console, username: str,
                                                                         role: str) -> None:
    console.login(username)
    page = console.client.get(REPORT + "?lang=en").text
    assert "Sign off this report" not in page and 'name="comment"' not in page
    token = field(page, "csrf")  # the sign-out form's token: valid for this session
    r = console.client.post(REPORT + "/sign?lang=en", data={"csrf": token, "comment": "ok"})
    assert r.status_code == 403
    assert f"Your role ({role}) does not allow this: only reviewer or admin may sign a monthly report." in r.text
    stored = row(console.engine)
    assert stored is not None and stored.status == "draft" and signed_events(console.engine) == 0


@pytest.mark.parametrize("csrf", [None, "", "12345.deadbeef", "other-session"])
def test_a_missing_or_foreign_form_token_is_403_and_records_nothing(console: Console, csrf: str | None) -> None:
    if csrf == "other-session":
        console.login("adam")
        csrf = console.token()
        console.client.cookies.clear()
    console.login("rvw")
    r = sign(console, csrf=csrf)
    assert r.status_code == 403 and "This form is too old or did not come from the console." in r.text
    stored = row(console.engine)
    assert stored is not None and stored.status == "draft" and signed_events(console.engine) == 0


def test_a_signed_report_cannot_be_signed_again(console: Console) -> None:
    console.login("rvw")
    stale = console.client.get(REPORT + "?lang=en").text
    assert sign(console).status_code == 303
    console.client.cookies.clear()
    console.login("adam")
    r = console.client.post(REPORT + "/sign?lang=en", data={"csrf": console.token(), "comment": "twice",
                                                          "content_hash": field(stale, "content_hash")})
    assert r.status_code == 409 and "Already signed" in r.text
    assert "was signed by rvw at 14 Apr 2026 10:00 CEST. A signed report is frozen" in r.text
    stored = row(console.engine)
    assert stored is not None and stored.signed_by == "rvw" and signed_events(console.engine) == 1


def test_a_comment_is_required(console: Console) -> None:
    console.login("rvw")
    r = sign(console, "   ")
    assert r.status_code == 400 and "Write a comment before signing. Nothing was recorded." in r.text
    assert 'name="comment"' in r.text and signed_events(console.engine) == 0


def test_the_reviewer_signs_only_the_figures_the_page_showed(console: Console) -> None:
    console.login("rvw")
    page = console.client.get(REPORT + "?lang=en").text
    late = console.log.run(T0 + timedelta(days=2))  # another March test closes while the reviewer reads
    console.log.ping(late, "LU-CNC", "email", sent_at=T0 + timedelta(days=2), response_s=60)
    console.log.close(late)
    r = console.client.post(REPORT + "/sign?lang=en", data={"csrf": field(page, "csrf"), "comment": "ok",
                                                          "content_hash": field(page, "content_hash")})
    assert r.status_code == 409 and "The figures of 2026-03 changed since you opened the page" in r.text
    assert signed_events(console.engine) == 0
    # The page now shows the new figures, and signing them works.
    assert sign(console).status_code == 303
    stored = row(console.engine)
    assert stored is not None and stored.data["totals"]["checks"] == 5
