"""Nothing blocking runs on the event loop (ARCHITECTURE.md, "Invariants"): the console's
Argon2 once stalled every page, acknowledgement pages included, for 3.7-5.3 s during ten
sign-ins (issue 9)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from commtest.clock import FrozenClock
from commtest.db import make_engine
from commtest.users import add_user
from tests.web.conftest import sent_run, web_settings
from tests.web.console_support import PASSWORD, field_value
from tests.channels.email_support import free_port
from tests.web.test_email_end_to_end import Served
from web.app import create_app
from web.console import LOGIN_ATTEMPTS_PER_MINUTE


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    eng = make_engine(sqlite_url)  # the event loop is the same whatever the database
    yield eng
    eng.dispose()


def test_ten_sign_ins_at_once_do_not_stall_the_acknowledgement_page(sqlite_engine: Engine, clock: FrozenClock,
                                                                     tmp_path: Path) -> None:
    settings = web_settings(sqlite_engine)
    _run_id, tokens = sent_run(sqlite_engine, clock, settings)
    add_user(sqlite_engine, "cora", "coordinator", clock, password=PASSWORD)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logins = LOGIN_ATTEMPTS_PER_MINUTE  # as many as one address may try
    with Served(create_app(settings, sqlite_engine, clock), port):
        browsers = [httpx.Client(base_url=base, timeout=60) for _ in range(logins)]
        forms = [field_value(b.get("/console/login?lang=en").text, "csrf") for b in browsers]
        ack = httpx.Client(base_url=base, timeout=60)
        link = f"/ack/{tokens['desk@xa-one.example']}"
        assert ack.get(link).status_code == 200  # warm: the first request compiles templates
        go = threading.Barrier(logins + 1)
        codes: list[int] = []
        ends: list[float] = []

        def sign_in(browser: httpx.Client, csrf: str) -> None:
            go.wait()
            r = browser.post("/console/login?lang=en", data={"username": "cora", "password": PASSWORD, "csrf": csrf})
            ends.append(time.monotonic())
            codes.append(r.status_code)

        threads = [threading.Thread(target=sign_in, args=pair) for pair in zip(browsers, forms, strict=True)]
        for t in threads:
            t.start()
        go.wait()
        started = time.monotonic()
        time.sleep(0.05)  # the sign-ins are hashing now
        answered = ack.get(link)
        ack_seconds = time.monotonic() - started
        for t in threads:
            t.join(120)
        for client in (*browsers, ack):
            client.close()
    assert answered.status_code == 200 and "<form" in answered.text
    assert codes == [303] * logins, codes  # every sign-in really ran Argon2 and succeeded
    # Were Argon2 on the event loop, the page would wait for every sign-in queued before it
    # (measured: 2.2-2.7 s of 2.2-2.7 s); off it, it answers while they hash (0.4-0.6 s of
    # about 2 s on two busy cores). The bound is relative, so a faster or slower machine
    # changes nothing.
    sign_ins_seconds = max(ends) - started
    assert ack_seconds < max(0.25, 0.6 * sign_ins_seconds), (ack_seconds, sign_ins_seconds)
