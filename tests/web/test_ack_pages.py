"""The acknowledgement pages: GET shows, POST confirms once, every failure has its page."""
from __future__ import annotations

import re
import sqlite3

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from commtest.db import session_scope
from commtest.models import ContactPoint, Event, Organisation, Ping
from scheduler.records import token_hash
from tests.web.conftest import Web, sent_run, web_settings
from web.app import create_app
from web.csrf import CsrfSigner
from web.i18n import pick_language
from web.officer import acknowledge_by_link

ADDR = "desk@xa-one.example"


def ping_of(engine: Engine, address: str = ADDR) -> Ping:
    with session_scope(engine) as s:
        p = s.exec(select(Ping).where(Ping.address == address, Ping.channel == "email")).first()
        assert p is not None
        return p


def acked_events(engine: Engine) -> int:
    with session_scope(engine) as s:
        return int(s.exec(select(func.count()).select_from(Event).where(Event.kind == "ping.acked")).one())


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "the page has no CSRF field"
    return m.group(1)


def test_get_shows_what_is_confirmed_and_changes_nothing(web: Web) -> None:
    token = web.tokens[ADDR]
    r = web.client.get(f"/ack/{token}")
    assert r.status_code == 200
    assert "Centre One" in r.text and "Centre One desk" in r.text
    assert 'lang="nl"' in r.text and "Ontvangst bevestigen" in r.text  # the contact's language
    assert r.text.count("<button") == 1 and "<script" not in r.text
    assert "14 apr 2026 10:15 CEST" in r.text  # deadline in the contact's local time (08:15 UTC)
    assert ping_of(web.engine).state == "sent" and acked_events(web.engine) == 0


def test_head_changes_nothing(web: Web) -> None:
    assert web.client.head(f"/ack/{web.tokens[ADDR]}").status_code == 200
    assert ping_of(web.engine).state == "sent" and acked_events(web.engine) == 0


def test_the_language_can_be_switched(web: Web) -> None:
    r = web.client.get(f"/ack/{web.tokens[ADDR]}?lang=fr")
    assert 'lang="fr"' in r.text and "Confirmer la réception" in r.text
    assert f'action="/ack/{web.tokens[ADDR]}?lang=fr"' in r.text


def _languages(engine: Engine, ping: str, contact: list[str], organisation: list[str]) -> None:
    """The ping in a language the pages do not have; the contact's and organisation's lists."""
    with session_scope(engine) as s:
        p = s.exec(select(Ping).where(Ping.address == ADDR, Ping.channel == "email")).one()
        p.language = ping
        cp = s.get(ContactPoint, p.contact_point_id)
        assert cp is not None
        cp.languages = contact
        org = s.get(Organisation, cp.organisation_id)
        assert org is not None
        org.languages = organisation
        s.add_all([p, cp, org])


def test_a_ping_language_without_pages_falls_back_to_the_contact_points_other_languages(web: Web) -> None:
    _languages(web.engine, "it", ["it", "fr"], ["de"])
    r = web.client.get(f"/ack/{web.tokens[ADDR]}")
    assert '<html lang="fr">' in r.text and "Confirmer la réception" in r.text
    assert f'action="/ack/{web.tokens[ADDR]}?lang=fr"' in r.text


def test_then_to_the_organisations_languages_before_the_default(web: Web) -> None:
    _languages(web.engine, "it", ["it", "es"], ["pt", "de"])
    r = web.client.get(f"/ack/{web.tokens[ADDR]}")
    assert '<html lang="de">' in r.text


def test_then_to_the_default_language_when_nobody_speaks_one_the_pages_have(web: Web) -> None:
    _languages(web.engine, "it", ["it"], ["es"])
    r = web.client.get(f"/ack/{web.tokens[ADDR]}")
    assert f'<html lang="{web.settings.default_language}">' in r.text


def test_a_requested_language_still_comes_first(web: Web) -> None:
    _languages(web.engine, "it", ["fr"], ["de"])
    r = web.client.get(f"/ack/{web.tokens[ADDR]}?lang=lb")
    assert '<html lang="lb">' in r.text


def test_pick_language_takes_the_first_preferred_language_the_pages_have() -> None:
    assert pick_language(None, ["tlh", "FR-be", "de"], "en") == "fr"
    assert pick_language(None, "nl_BE", "en") == "nl"
    assert pick_language("lb", ["fr"], "en") == "lb"
    assert pick_language(None, ["tlh"], "de") == "de"


def test_post_acknowledges_once_with_method_name_and_response_time(web: Web) -> None:
    web.clock.advance(seconds=95)
    r = acknowledge_by_link(web.client, f"/ack/{web.tokens[ADDR]}", "Jan Peeters")
    assert r.status_code == 200
    assert "Dank u: ontvangst bevestigd" in r.text
    assert "1 min 35 s" in r.text
    ping = ping_of(web.engine)
    assert (ping.state, ping.outcome, ping.ack_method, ping.ack_by) == ("acked", "acked", "link", "Jan Peeters")
    assert ping.ack_suspicious is False
    with session_scope(web.engine) as s:
        ev = s.exec(select(Event).where(Event.kind == "ping.acked")).one()
    assert ev.response_ms == 95_000 and ev.data["source"] == "testclient" and ev.data["user_agent"]


def test_a_second_post_is_409_and_shows_when_it_was_acknowledged(web: Web) -> None:
    url = f"/ack/{web.tokens[ADDR]}"
    page = web.client.get(url)
    assert web.client.post(url, data={"csrf": csrf_of(page.text), "name": ""}).status_code == 200
    again = web.client.post(url, data={"csrf": csrf_of(page.text), "name": ""})
    assert again.status_code == 409
    assert "Al bevestigd" in again.text and "14 apr 2026 10:00 CEST" in again.text
    assert web.client.get(url).status_code == 409
    assert acked_events(web.engine) == 1


def test_an_acknowledgement_within_seconds_is_flagged_but_the_page_does_not_say_so(web: Web) -> None:
    web.clock.advance(seconds=2)
    r = acknowledge_by_link(web.client, f"/ack/{web.tokens[ADDR]}", "")
    assert r.status_code == 200 and "suspic" not in r.text.lower() and "verdacht" not in r.text.lower()
    assert ping_of(web.engine).ack_suspicious is True


def test_an_expired_link_is_410(web: Web) -> None:
    url = f"/ack/{web.tokens[ADDR]}"
    csrf = csrf_of(web.client.get(url).text)
    web.clock.advance(days=8)  # past ack_token_ttl (7 days)
    r = web.client.get(url)
    assert r.status_code == 410 and "Link verlopen" in r.text
    assert web.client.post(url, data={"csrf": csrf}).status_code == 410
    assert acked_events(web.engine) == 0


def test_a_forged_token_of_the_right_shape_is_404(web: Web) -> None:
    forged = "Z" * 43
    r = web.client.get(f"/ack/{forged}?lang=de")
    assert r.status_code == 404 and "Link nicht erkannt" in r.text
    signer = CsrfSigner.from_settings(web.settings, web.clock)
    assert web.client.post(f"/ack/{forged}", data={"csrf": signer.issue(token_hash(forged))}).status_code == 404


def test_a_truncated_token_is_400(web: Web) -> None:
    r = web.client.get(f"/ack/{web.tokens[ADDR][:30]}?lang=en")
    assert r.status_code == 400 and "Incomplete link" in r.text
    assert web.client.post(f"/ack/{web.tokens[ADDR][:30]}", data={}).status_code == 400
    assert web.client.get("/ack/" + "A" * 42 + "!").status_code == 400


@pytest.mark.parametrize("csrf", [None, "", "12345.deadbeef", "not-even-close"])
def test_a_missing_or_forged_csrf_field_is_403_and_records_nothing(web: Web, csrf: str | None) -> None:
    data = {"name": "Scanner"} if csrf is None else {"name": "Scanner", "csrf": csrf}
    r = web.client.post(f"/ack/{web.tokens[ADDR]}", data=data)
    assert r.status_code == 403 and "Probeer het opnieuw" in r.text
    assert ping_of(web.engine).state == "sent" and acked_events(web.engine) == 0


def test_a_csrf_field_of_another_ping_or_too_old_is_refused(web: Web) -> None:
    other = csrf_of(web.client.get(f"/ack/{web.tokens['desk@xb-two.example']}").text)
    assert web.client.post(f"/ack/{web.tokens[ADDR]}", data={"csrf": other}).status_code == 403
    mine = csrf_of(web.client.get(f"/ack/{web.tokens[ADDR]}").text)
    web.clock.advance(hours=13)
    assert web.client.post(f"/ack/{web.tokens[ADDR]}", data={"csrf": mine}).status_code == 403
    assert acked_events(web.engine) == 0


def test_every_response_carries_the_security_headers(web: Web) -> None:
    for r in (web.client.get(f"/ack/{web.tokens[ADDR]}"), web.client.get("/healthz"),
              web.client.get("/nothing-here"), web.client.get("/ack/short")):
        assert r.headers["content-security-policy"].startswith("default-src 'none'")
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"


def test_an_unknown_page_is_a_plain_404_page_not_a_stack_trace(web: Web) -> None:
    r = web.client.get("/nothing-here?lang=en")
    assert r.status_code == 404 and "Page not found" in r.text and "Traceback" not in r.text


def test_healthz_reports_the_database(web: Web) -> None:
    r = web.client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok", "database": "ok"}


def test_head_healthz_answers_like_get_without_a_body(web: Web) -> None:
    get, head = web.client.get("/healthz"), web.client.head("/healthz")
    assert head.status_code == get.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"
    assert head.headers["cache-control"] == "no-store"


def test_the_ack_pages_are_rate_limited_per_source_address(engine: Engine, clock) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    settings = web_settings(engine, ack_rate_limit_per_minute=3)
    _, tokens = sent_run(engine, clock, settings)
    client = TestClient(create_app(settings, engine, clock))
    url = f"/ack/{tokens[ADDR]}"
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    r = client.get(url + "?lang=en")
    assert r.status_code == 429 and "Too many requests" in r.text and r.headers["retry-after"] == "60"
    assert client.get("/healthz").status_code == 200  # only /ack is limited
    clock.advance(seconds=61)
    assert client.get(url).status_code == 200



def test_after_an_abort_the_link_says_the_test_was_called_off_and_an_answer_changes_nothing(web: Web) -> None:
    from scheduler.engine import RunEngine

    eng = RunEngine(web.engine, web.settings, web.clock, actor="cli:cora")
    eng.abort_run(web.run_id, by="cora", reason="exercise called off")
    eng.close()
    token = web.tokens[ADDR]
    page = web.client.get(f"/ack/{token}?lang=en")
    assert page.status_code == 200 and "This test was called off." in page.text
    r = web.client.post(f"/ack/{token}?lang=en", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "This test was called off" in r.text and "is recorded" in r.text
    ping = ping_of(web.engine)
    assert acked_events(web.engine) == 0 and ping.outcome == "aborted"
    assert after_close_events(web.engine, ping.id) == 1
    again = web.client.post(f"/ack/{token}?lang=en", data={"csrf": csrf_of(page.text)})
    assert again.status_code == 200 and after_close_events(web.engine, ping.id) == 1  # kept once


def after_close_events(engine: Engine, ping_id: int | None) -> int:
    with session_scope(engine) as s:
        return len(s.exec(select(Event).where(Event.ping_id == ping_id, Event.kind == "ping.answer_after_close")).all())


def test_an_answer_after_the_test_completed_is_thanked_and_changes_no_verdict(web: Web) -> None:
    from channels.registry import ChannelSet
    from channels.sandbox import Rule, SandboxChannel, SandboxScript
    from commtest.models import TestRun
    from scheduler.engine import RunEngine

    quiet = SandboxScript(default=Rule("never"))  # nobody answers anything
    chans = ChannelSet(web.settings, web.clock, {k: SandboxChannel(k, web.clock, quiet) for k in ("email", "voice", "sms")})
    eng = RunEngine(web.engine, web.settings, web.clock, chans, actor="test")
    web.clock.advance(3 * 3600)  # every deadline passes; the run completes without an answer
    for _ in range(20):
        eng.tick()
        web.clock.advance(600)
    eng.close()
    with session_scope(web.engine) as s:
        run = s.get(TestRun, web.run_id)
        assert run is not None and run.status == "completed"
    token = web.tokens[ADDR]
    page = web.client.get(f"/ack/{token}?lang=en")
    r = web.client.post(f"/ack/{token}?lang=en", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200 and "the test had already closed" in r.text and "no longer changes its result" in r.text
    assert acked_events(web.engine) == 0 and ping_of(web.engine).outcome == "delivered_no_ack"


def test_a_form_body_over_the_limit_is_refused_before_it_is_parsed(web: Web) -> None:
    token = web.tokens[ADDR]
    r = web.client.post(f"/ack/{token}", content=b"csrf=" + b"x" * 100_000,
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413 and acked_events(web.engine) == 0


def test_the_page_names_the_organisation_as_the_reader_reads_it(web: Web) -> None:
    with session_scope(web.engine) as s:
        org = s.exec(select(Organisation).where(Organisation.code == "XA-ONE")).one()
        org.names = {"fr": "Centre Un (fictif)", "nl": "Centrum Een"}
        s.add(org)
    token = web.tokens[ADDR]
    assert "Centrum Een" in web.client.get(f"/ack/{token}").text  # the contact reads Dutch
    french = web.client.get(f"/ack/{token}?lang=fr").text
    assert "Centre Un (fictif)" in french and "Centrum Een" not in french
    assert "Centre One</dd>" in web.client.get(f"/ack/{token}?lang=de").text  # no German name: the directory's


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_an_unexpected_error_on_a_link_is_a_500_page_with_the_headers_and_no_token_in_the_log(
        web: Web, method: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    token = web.tokens[ADDR]

    def broken(*_: object) -> None:
        raise RuntimeError("the database went away in an unexpected way")

    monkeypatch.setattr("web.ack.lookup_token", broken)  # the engine's read (PostgreSQL)
    monkeypatch.setattr("commtest.point_read.PointRead.first", broken)  # the direct read (SQLite)
    r = web.client.request(method, f"/ack/{token}?lang=en", data={"csrf": "x"} if method == "POST" else None)
    assert r.status_code == 500 and "Traceback" not in r.text and "the database went away" not in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["cache-control"] == "no-store"
    assert "unhandled error" in caplog.text and token not in caplog.text  # the link is a secret
    assert ping_of(web.engine).state == "sent" and acked_events(web.engine) == 0


@pytest.mark.parametrize("cause", ["writer process gone", "database unreachable"])
def test_an_answer_that_cannot_be_recorded_right_now_is_a_503_with_a_retry_after_and_nothing_recorded(
        web: Web, cause: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlalchemy as sa

    from scheduler.ack_process import WriterGone
    from scheduler.ack_writer import AckWriter

    token = web.tokens[ADDR]
    url = f"/ack/{token}?lang=en"
    csrf = csrf_of(web.client.get(url).text)

    def unavailable(*_: object) -> None:
        if cause == "writer process gone":
            raise WriterGone("the acknowledgement writer ended before it answered")
        raise sa.exc.OperationalError("UPDATE ping", {}, Exception("server closed the connection unexpectedly"))

    monkeypatch.setattr(AckWriter, "submit_async", unavailable)  # the web fixture's clock is frozen: a thread
    r = web.client.post(url, data={"csrf": csrf})
    assert r.status_code == 503 and r.headers["retry-after"] == "5" and "try again" in r.text
    assert r.headers["cache-control"] == "no-store"
    assert ping_of(web.engine).state == "sent" and acked_events(web.engine) == 0
    monkeypatch.undo()
    assert web.client.post(url, data={"csrf": csrf}).status_code == 200  # the officer's retry is recorded


def test_a_link_with_anything_after_the_token_is_not_taken_for_the_link(web: Web) -> None:
    token = web.tokens[ADDR]
    assert web.client.get(f"/ack/{token}x").status_code == 400  # 44 characters: malformed, not looked up
    assert web.client.get(f"/ack/{token}/nothing").status_code == 404
    assert web.client.head(f"/ack/{token}").status_code == 200  # HEAD takes the app's own route


def test_an_unexpected_error_on_a_page_behind_a_link_logs_the_path_without_the_token(
        web: Web, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    token = web.tokens[ADDR]

    def broken(*_: object) -> None:
        raise RuntimeError("unexpected")

    from starlette.testclient import TestClient

    monkeypatch.setattr("web.officer_correction.lookup_token", broken)
    r = TestClient(web.client.app, raise_server_exceptions=False).get(f"/ack/{token}/correction?lang=en")
    assert r.status_code == 500 and r.headers["cache-control"] == "no-store"
    assert "/ack/…/correction" in caplog.text and token not in caplog.text


def test_loggable_paths_hide_the_secret_part_only() -> None:
    from web.app import loggable_path

    assert loggable_path("/ack/abc/video") == "/ack/…/video"
    assert loggable_path("/calendar/secret.ics") == "/calendar/…"
    assert loggable_path("/console/runs/3") == "/console/runs/3"


def test_a_page_whose_direct_read_is_refused_reads_through_the_engine(
        web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(*_: object, **__: object) -> None:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr("commtest.point_read.PointRead.first", busy)  # e.g. a WAL being recovered
    token = web.tokens[ADDR]
    page = web.client.get(f"/ack/{token}?lang=en")
    assert page.status_code == 200 and "Centre One desk" in page.text
    r = web.client.post(f"/ack/{token}?lang=en", data={"csrf": csrf_of(page.text)})
    assert r.status_code == 200 and ping_of(web.engine).state == "acked"
