"""A coordinator in a real browser (Debian's Chromium through Playwright): signs in, starts a
test from the console, watches the live board turn green as the sandbox officers answer,
approves a correction a duty officer sent from the acknowledgement page, and downloads the
test report. The run engine's ticks run in this test, on a frozen clock it moves."""
from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.sandbox import Rule, SandboxChannel, SandboxScript
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Endpoint
from tests.channels.email_support import free_port
from tests.web.console_support import PASSWORD, make_world
from tests.web.test_email_end_to_end import CHROMIUM, Served
from web.app import create_app


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """Debian's Chromium for this module only: Playwright's sync API holds an event loop while it
    runs, which later tests (asyncio.run) must not meet."""
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


class Keeping:
    """A sandbox provider that also keeps what it was handed (the raw ack tokens)."""

    def __init__(self, inner: SandboxChannel) -> None:
        self.inner, self.kind, self.provider, self.simulated = inner, inner.kind, "sandbox", True
        self.sent: list[object] = []

    def send(self, ping):  # type: ignore[no-untyped-def]
        self.sent.append(ping)
        return self.inner.send(ping)

    def poll_reports(self, now):  # type: ignore[no-untyped-def]
        return self.inner.poll_reports(now)

    def close(self) -> None:
        self.inner.close()


def test_a_coordinator_starts_a_test_watches_it_turn_green_approves_a_correction_and_downloads_the_report(
        engine: Engine, clock: FrozenClock, chromium, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    browser = chromium
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    script = SandboxScript(default=Rule("ack", timedelta(seconds=60)))
    for world in make_world(engine, clock, script, public_base_url=base):
        kept = {k: Keeping(SandboxChannel(k, clock, script)) for k in ("email", "voice", "sms", "video", "cap")}
        world.channels.update(kept)  # type: ignore[arg-type]
        with Served(create_app(world.settings, engine, clock), port):
            page = browser.new_page(accept_downloads=True)
            try:
                page.goto(f"{base}/console?lang=en")
                page.fill("#username", "cora")
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_selector("text=Next planned tests")
                page.click("text=Schedules")
                page.click("text=Run test-playbook now")
                assert page.locator("table.preview tbody tr").count() == 4  # e-mail and voice, two centres
                page.click("#start-run")
                page.wait_for_selector("#board")
                run_id = int(re.search(r"/console/runs/(\d+)", page.url).group(1))  # type: ignore[union-attr]
                world.drive(0)  # the leader starts the run and sends the first pings
                page.wait_for_selector('td[data-verdict="pending"]')
                assert page.locator("html.live").count() == 1  # pushed by server-sent events

                # A duty officer sends new details from the acknowledgement page of the call.
                call = next(p for p in kept["voice"].sent if p.address.startswith("+32"))  # type: ignore[attr-defined]
                officer = browser.new_page()
                officer.goto(f"{base}/ack/{call.token}?lang=en")  # type: ignore[attr-defined]
                officer.click("text=Our contact details changed")
                officer.fill("#c-phone", "+32 2 555 01 99")
                officer.fill("#c-name", "J. Peeters (fictional)")
                officer.click("text=Send the new details")
                officer.wait_for_selector("text=Thank you: your new details were sent")
                officer.close()

                # The officers answer after a minute: the board turns green by itself.
                world.drive(90)
                from playwright.sync_api import expect

                expect(page.locator('td[data-verdict="pass"]')).to_have_count(4, timeout=15_000)
                assert page.locator("td[data-verdict=pass] .simulated").count() == 4  # SIMULATED, never evidence

                page.goto(f"{base}/console/directory?lang=en")
                assert "J. Peeters (fictional)" in page.content()
                page.click("text=Approve and update the directory")
                page.wait_for_selector("text=No correction waits for a decision.")
                assert "+3225550199" in page.content()
                with session_scope(engine) as s:
                    assert s.exec(select(Endpoint).where(Endpoint.address == "+3225550199")).first() is not None

                page.goto(f"{base}/console/runs/{run_id}/report?lang=en")
                assert page.frame_locator("iframe.report-frame").locator("body").count() == 1
                with page.expect_download() as info:
                    page.click("text=HTML")
                saved = tmp_path / info.value.suggested_filename
                info.value.save_as(saved)
                assert saved.name == f"commtest-run-{run_id}-en.html" and f"{run_id}" in saved.read_text()
            finally:
                page.close()
