"""The mail reader against a real IMAP server (Dovecot) that cuts its connections and restarts:
the reader recovers by itself, and each reply counts once."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from imapclient import IMAPClient
from sqlalchemy.engine import Engine

from channels.email.devserver import DevSmtpServer
from channels.email.imap import DONE_KEYWORD, ImapSource
from channels.email.message import build_reply
from commtest.clock import FrozenClock
from commtest.db import read_session
from commtest.models import Event, InboundMessage, Ping
from scheduler.inbound import serve_inbound
from tests.channels.email_support import DovecotServer, Imap, email_engine, smtp, smtp_server  # noqa: F401
from tests.faults import figures
from tests.faults.replicas import wait_for
from tests.scheduler.seed import seed_bulk, store_playbook

pytestmark = pytest.mark.faults

DESKS = 12
PLAYBOOK = """
id: imap-faults
title: IMAP faults
owner: XA-BULK
timezone: Europe/Brussels
default_language: en
participants:
  - organisation: XA-BULK
    fields: [crisis-desk]
steps:
  - id: email
    channel: email
    template: ping
    ack_deadline: 30m
templates:
  ping:
    en:
      subject: "Communication test {{ run.id }}"
      body: "Please confirm: {{ ack_url }}"
"""


@pytest.fixture
def mail_server() -> Iterator[DovecotServer]:
    server = DovecotServer.create()
    server.start()
    yield server
    server.remove()


def deliver(imap: Imap, data: bytes) -> None:
    """What the mail server does with a reply to ack+TOKEN@: put it in the reader's INBOX
    (again after a moment, while the server is coming back)."""
    for _ in range(100):
        try:
            with IMAPClient(imap.host, port=imap.port, ssl=False, timeout=5) as c:
                c.login(imap.user, imap.password)
                c.append("INBOX", data)
                return
        except Exception:  # noqa: BLE001 - the server is restarting: try again
            time.sleep(0.1)
    raise AssertionError("could not deliver to the IMAP server")


def test_the_mail_reader_recovers_from_dropped_connections_and_a_server_restart_and_counts_each_reply_once(
        engine: Engine, clock: FrozenClock, smtp: DevSmtpServer, mail_server: DovecotServer,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    seed_bulk(engine, organisations=1, per_org=DESKS)
    store_playbook(engine, PLAYBOOK, "imap-faults")
    runs = email_engine(engine, clock, smtp)
    run_id = runs.create_run("imap-faults")
    runs.start_run(run_id)
    runs.tick()
    runs.close()
    sent = {str(m["Delivered-To"]): m for m in smtp.messages()}
    assert len(sent) == DESKS
    imap = mail_server.imap()
    settings = imap.settings(engine, imap_poll_seconds=0.2, smtp_timeout_seconds=5.0)
    replies = [bytes(build_reply(sent[a], f"Officer {i} <officer{i}@bulk0.example>", "Received, thank you."))
               for i, a in enumerate(sorted(sent))]

    caplog.set_level(logging.WARNING, logger="scheduler.inbound")
    stop = threading.Event()
    source = ImapSource(settings)
    reader = threading.Thread(target=serve_inbound, args=(engine, clock, settings, source, stop), name="mail-reader",
                              daemon=True)
    reader.start()
    rng = figures.rng("imap")
    faults = 0
    try:
        for i, reply in enumerate(replies):
            deliver(imap, reply)
            time.sleep(rng.uniform(0.0, 0.3))  # the reader may be fetching, recording, flagging or idling
            if i % 3 == 0:  # every connection of the mailbox cut, the server up (once the reader is back)
                faults += any(mail_server.kick() or time.sleep(0.1) for _ in range(20))
            elif i % 3 == 1:
                mail_server.stop()  # the server restarts
                time.sleep(rng.uniform(0.2, 1.0))
                mail_server.start()
                faults += 1
        deliver(imap, replies[0])  # the same reply delivered again
        wait_for(lambda: _acked(engine, run_id) == DESKS, 90, "every reply to be recorded",
                 lambda: "\n".join(r.getMessage() for r in caplog.records))
        wait_for(lambda: _all_flagged(imap), 30, "every message in the mailbox to be flagged processed")
        assert reader.is_alive(), "the mail reader thread died"
    finally:
        stop.set()
        reader.join(15)
        source.close()
    with read_session(engine) as s:
        conn = s.connection()
        acked = conn.execute(sa.select(Event.__table__.c.ping_id, sa.func.count()).where(  # type: ignore[attr-defined]
            Event.__table__.c.kind == "ping.acked").group_by(Event.__table__.c.ping_id)).all()  # type: ignore[attr-defined]
        inbound = conn.execute(sa.select(sa.func.count()).select_from(InboundMessage.__table__)).scalar_one()  # type: ignore[attr-defined]
        methods = {m for (m,) in conn.execute(sa.select(Ping.__table__.c.ack_method)).all()}  # type: ignore[attr-defined]
    assert sorted(n for _, n in acked) == [1] * DESKS  # each reply once, the redelivered one too
    assert inbound == DESKS
    assert methods == {"email-reply"}
    reconnects = [r for r in caplog.records if r.getMessage().startswith("mail reader:")]
    assert reconnects, "the faults never reached the reader"
    figures.add(imap_faults=faults)


def _acked(engine: Engine, run_id: int) -> int:
    with read_session(engine) as s:
        return int(s.connection().execute(sa.select(sa.func.count()).select_from(Ping.__table__).where(  # type: ignore[attr-defined]
            Ping.__table__.c.run_id == run_id, Ping.__table__.c.state == "acked")).scalar_one())  # type: ignore[attr-defined]


def _all_flagged(imap: Imap) -> bool:
    try:
        with IMAPClient(imap.host, port=imap.port, ssl=False, timeout=5) as c:
            c.login(imap.user, imap.password)
            c.select_folder("INBOX")
            flags = c.get_flags(c.search(["ALL"]))
            return all(DONE_KEYWORD in f for f in flags.values())
    except Exception:  # noqa: BLE001 - the server may still be coming back
        return False
