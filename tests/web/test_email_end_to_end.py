"""A run sent through the real SMTP server, acknowledged once by link and once by reply,
and (with Debian's Chromium) once by a real browser pressing the button."""
from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from email.message import EmailMessage

import asyncio

import aiosmtplib
import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.email.devserver import DevSmtpServer
from channels.email.maildir import MaildirSource
from channels.email.message import build_reply
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Ping
from scheduler.inbound import process_source
from scheduler.summary import run_summary
from tests.channels.email_support import email_engine, email_settings, free_port
from tests.scheduler.seed import seed_directory, store_playbook
from web.app import create_app
from web.officer import acknowledge_by_link

CHROMIUM = "/usr/bin/chromium"


def html_link(msg: EmailMessage) -> str:
    html = msg.get_body(preferencelist=("html",))
    assert html is not None
    m = re.search(r'href="([^"]+/ack/[^"]+)"', html.get_content())
    assert m
    return m.group(1)


def send_run(engine: Engine, clock: FrozenClock, smtp: DevSmtpServer, base_url: str) -> tuple[int, dict[str, EmailMessage]]:
    seed_directory(engine)
    store_playbook(engine)
    eng = email_engine(engine, clock, smtp, public_base_url=base_url, secret_key="fictional-test-secret")
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    eng.close()
    return run_id, {str(m["Delivered-To"]): m for m in smtp.messages()}


def email_pings(engine: Engine, run_id: int) -> dict[str, Ping]:
    with session_scope(engine) as s:
        return {p.address: p for p in s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "email")).all()}


def test_one_centre_acknowledges_by_link_and_the_other_by_reply(engine: Engine, clock: FrozenClock,
                                                                  smtp: DevSmtpServer) -> None:
    run_id, received = send_run(engine, clock, smtp, "http://testserver")
    assert sorted(received) == ["desk@xa-one.example", "desk@xb-two.example"]
    settings = email_settings_for(engine, smtp)

    clock.advance(seconds=75)
    with TestClient(create_app(settings, engine, clock), base_url="http://testserver") as client:
        r = acknowledge_by_link(client, html_link(received["desk@xa-one.example"]), "Jan Peeters")
    assert r.status_code == 200

    # The German desk replies; the reply goes through SMTP to the Reply-To (the local server's Maildir).
    reply = build_reply(received["desk@xb-two.example"], "Anna Schmidt <anna.schmidt@xb-two.example>", "Erhalten.")
    asyncio.run(aiosmtplib.send(reply, hostname=smtp.host, port=smtp.port, start_tls=False))
    clock.advance(seconds=105)  # read 3 minutes after sending
    results = process_source(engine, clock, settings, MaildirSource(smtp.maildir))
    # The two pings themselves are in the same Maildir: seen, never counted as replies.
    assert sorted((r.classification, r.outcome) for r in results) == [
        ("human", "acked"), ("unmatched", None), ("unmatched", None)]

    pings = email_pings(engine, run_id)
    link, replied = pings["desk@xa-one.example"], pings["desk@xb-two.example"]
    assert (link.ack_method, link.ack_by, link.outcome) == ("link", "Jan Peeters", "acked")
    assert (replied.ack_method, replied.ack_by, replied.outcome) == ("email-reply", "Anna Schmidt", "acked")
    with session_scope(engine) as s:
        rows = {(r.organisation_code, r.channel): r for r in run_summary(s, run_id).rows}
    assert (rows[("XA-ONE", "email")].acked, rows[("XA-ONE", "email")].response_ms) == (1, 75_000)
    assert (rows[("XB-TWO", "email")].acked, rows[("XB-TWO", "email")].response_ms) == (1, 180_000)
    assert rows[("XA-ONE", "email")].verdict == rows[("XB-TWO", "email")].verdict == "pass"


def email_settings_for(engine: Engine, smtp: DevSmtpServer):  # type: ignore[no-untyped-def]
    return email_settings(engine, smtp, secret_key="fictional-test-secret", public_base_url="http://testserver")


# ---------------------------------------------------------------------------- a real browser

@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    pw = sync_api.sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-sync"])
    try:
        yield b
    finally:
        b.close()
        pw.stop()


class Served:
    """The app served by uvicorn on a loopback port, in a thread."""

    def __init__(self, app: object, port: int) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                                                   lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        for _ in range(200):
            if self.server.started:
                return self
            threading.Event().wait(0.02)
        raise AssertionError("uvicorn did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)


def test_a_real_browser_opens_the_link_from_the_mail_and_presses_the_button(
        engine: Engine, clock: FrozenClock, smtp: DevSmtpServer, browser) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    run_id, received = send_run(engine, clock, smtp, base)
    link = html_link(received["desk@xa-one.example"])
    assert link.startswith(base + "/ack/")
    settings = email_settings(engine, smtp, secret_key="fictional-test-secret", public_base_url=base)
    clock.advance(seconds=40)
    with Served(create_app(settings, engine, clock), port):
        page = browser.new_page(java_script_enabled=False)  # the page must work without it
        try:
            page.goto(link)
            assert page.title().startswith("Ontvangst bevestigen")
            assert email_pings(engine, run_id)["desk@xa-one.example"].state == "sent"  # opening changed nothing
            page.fill("#name", "Marie Dupont")
            page.click("button[type=submit]")
            heading = page.locator("h1").inner_text()
            body = page.locator("main").inner_text()
        finally:
            page.close()
    assert heading == "Dank u: ontvangst bevestigd"
    assert "40 s." in body
    ping = email_pings(engine, run_id)["desk@xa-one.example"]
    assert (ping.state, ping.ack_method, ping.ack_by) == ("acked", "link", "Marie Dupont")
