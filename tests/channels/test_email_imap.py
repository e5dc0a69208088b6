"""Replies, out-of-office notices and bounces read from a real IMAP server (Dovecot)."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage

import pytest
from imapclient import IMAPClient
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from channels.email.devserver import DevSmtpServer
from channels.email.imap import DONE_KEYWORD, ImapSource
from channels.email.message import build_reply
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Endpoint, Event, InboundMessage, Ping
from scheduler.inbound import process_source
from tests.channels.email_support import (  # noqa: F401
    Imap,
    dovecot,
    email_engine,
    smtp,
    smtp_server,
)
from tests.channels.test_email_inbound import dsn_bytes
from tests.scheduler.seed import seed_directory, store_playbook


@pytest.fixture
def imap(dovecot: Imap) -> Iterator[Imap]:
    """Dovecot with an empty INBOX."""
    with IMAPClient(dovecot.host, port=dovecot.port, ssl=False) as c:
        c.login(dovecot.user, dovecot.password)
        c.select_folder("INBOX")
        uids = c.search(["ALL"])
        if uids:
            c.delete_messages(uids)
            c.expunge()
    yield dovecot


def deliver(imap: Imap, data: bytes, at: object = None) -> None:
    """What the mail server does with mail for ack+TOKEN@: put it in the reader's INBOX."""
    with IMAPClient(imap.host, port=imap.port, ssl=False) as c:
        c.login(imap.user, imap.password)
        c.append("INBOX", data, msg_time=at)  # type: ignore[arg-type]


@pytest.fixture
def sent(engine: Engine, clock: FrozenClock, smtp: DevSmtpServer) -> dict[str, EmailMessage]:
    """A run whose two e-mail pings went through the SMTP server: the received messages by address."""
    seed_directory(engine)
    store_playbook(engine)
    eng = email_engine(engine, clock, smtp)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    eng.close()
    return {str(m["Delivered-To"]): m for m in smtp.messages()}


def ping_to(engine: Engine, address: str) -> Ping:
    with session_scope(engine) as s:
        ping = s.exec(select(Ping).where(Ping.address == address, Ping.channel == "email")).first()
        assert ping is not None
        return ping


def read(engine: Engine, clock: FrozenClock, imap: Imap):  # type: ignore[no-untyped-def]
    source = ImapSource(imap.settings(engine))
    try:
        return process_source(engine, clock, source.settings, source)
    finally:
        source.close()


def inbound_rows(engine: Engine) -> list[InboundMessage]:
    with session_scope(engine) as s:
        return list(s.exec(select(InboundMessage).order_by(InboundMessage.id)).all())


def test_a_human_reply_acknowledges_its_ping_with_the_server_receipt_time(
        engine: Engine, clock: FrozenClock, imap: Imap, sent: dict[str, EmailMessage]) -> None:
    sent_at = clock.now()
    clock.advance(minutes=5)
    reply = build_reply(sent["desk@xa-one.example"], "Jan Peeters <jan.peeters@xa-one.example>", "Goed ontvangen.")
    deliver(imap, bytes(reply), at=sent_at + timedelta(minutes=2))
    results = read(engine, clock, imap)
    assert [(r.classification, r.status, r.outcome) for r in results] == [("human", "recorded", "acked")]
    ping = ping_to(engine, "desk@xa-one.example")
    assert (ping.state, ping.outcome, ping.ack_method, ping.ack_by) == ("acked", "acked", "email-reply", "Jan Peeters")
    assert ping.acked_at == sent_at + timedelta(minutes=2)  # INTERNALDATE, not when we polled
    assert [(r.classification, r.ping_id) for r in inbound_rows(engine)] == [("human", ping.id)]


def test_an_out_of_office_reply_records_away_not_an_acknowledgement(
        engine: Engine, clock: FrozenClock, imap: Imap, sent: dict[str, EmailMessage]) -> None:
    original = sent["desk@xb-two.example"]
    ooo = build_reply(original, "desk@xb-two.example", "Ich bin bis Montag nicht im Büro.")
    ooo["Auto-Submitted"] = "auto-replied"
    ooo.replace_header("To", str(original["Return-Path"]).strip("<>"))  # auto-replies go to the Return-Path
    clock.advance(seconds=30)
    deliver(imap, bytes(ooo))
    results = read(engine, clock, imap)
    assert [(r.classification, r.outcome) for r in results] == [("auto-reply", "away")]
    ping = ping_to(engine, "desk@xb-two.example")
    assert (ping.state, ping.outcome, ping.acked_at) == ("expired", "away", None)
    with session_scope(engine) as s:  # the engine's follow-up ran: the playbook's retry is planned
        assert s.exec(select(func.count()).select_from(Ping).where(Ping.escalated_from_id == ping.id)).one() == 1


def test_a_bounce_marks_the_ping_bounced_and_the_endpoint_suspect(
        engine: Engine, clock: FrozenClock, imap: Imap, sent: dict[str, EmailMessage]) -> None:
    original = sent["desk@xa-one.example"]
    token = str(original["Reply-To"]).split("+", 1)[1].split("@", 1)[0]
    deliver(imap, dsn_bytes(token, with_original=False))
    results = read(engine, clock, imap)
    assert [(r.classification, r.outcome) for r in results] == [("bounce", "bounced")]
    ping = ping_to(engine, "desk@xa-one.example")
    assert (ping.state, ping.outcome) == ("failed", "bounced")
    assert "5.1.1" in (ping.error or "")
    with session_scope(engine) as s:
        assert s.get(Endpoint, ping.endpoint_id).status == "suspect"  # type: ignore[union-attr]


def test_a_reply_to_an_unknown_ping_is_stored_as_unmatched_and_changes_nothing(
        engine: Engine, clock: FrozenClock, imap: Imap, sent: dict[str, EmailMessage]) -> None:
    stranger = (b"From: someone@elsewhere.example\r\nTo: ack+" + b"Q" * 43 + b"@coord.example\r\n"
                b"Message-ID: <stray-1@elsewhere.example>\r\nIn-Reply-To: <ping-999.abc@coord.example>\r\n"
                b"Subject: Re: test\r\n\r\nHello?\r\n")
    deliver(imap, stranger)
    results = read(engine, clock, imap)
    assert [(r.classification, r.ping_id, r.outcome) for r in results] == [("unmatched", None, None)]
    assert [r.classification for r in inbound_rows(engine)] == ["unmatched"]
    assert {ping_to(engine, a).state for a in sent} == {"sent"}


def test_the_same_reply_delivered_twice_counts_once(
        engine: Engine, clock: FrozenClock, imap: Imap, sent: dict[str, EmailMessage]) -> None:
    reply = bytes(build_reply(sent["desk@xa-one.example"], "jan@xa-one.example", "OK"))
    deliver(imap, reply)
    deliver(imap, reply)
    results = read(engine, clock, imap)
    assert [r.status for r in results] == ["recorded", "duplicate"]
    assert len(inbound_rows(engine)) == 1
    with session_scope(engine) as s:
        acked = s.exec(select(func.count()).select_from(Event).where(Event.kind == "ping.acked")).one()
    assert acked == 1


def test_a_restart_does_not_count_processed_mail_again(
        engine: Engine, clock: FrozenClock, imap: Imap, sent: dict[str, EmailMessage]) -> None:
    deliver(imap, bytes(build_reply(sent["desk@xa-one.example"], "jan@xa-one.example", "OK")))
    assert len(read(engine, clock, imap)) == 1
    assert read(engine, clock, imap) == []  # a new connection: flagged $CommtestDone, not fetched
    with IMAPClient(imap.host, port=imap.port, ssl=False) as c:  # a crash between recording and flagging
        c.login(imap.user, imap.password)
        c.select_folder("INBOX")
        flags = c.get_flags(c.search(["ALL"]))
        assert all(DONE_KEYWORD in f and b"\\Seen" in f for f in flags.values())
        c.remove_flags(c.search(["ALL"]), [DONE_KEYWORD])
    assert [r.status for r in read(engine, clock, imap)] == ["duplicate"]
    assert len(inbound_rows(engine)) == 1


def test_idle_wakes_the_reader_when_mail_arrives(imap: Imap) -> None:
    source = ImapSource(imap.settings())
    try:
        assert source.supports_idle  # Dovecot offers IDLE in its CAPABILITY
        timer = threading.Timer(0.3, deliver, args=(imap, b"From: a@b.example\r\nSubject: x\r\n\r\nx\r\n"))
        timer.start()
        assert source.wait(5.0) is True
        timer.join()
        assert len(source.fetch_new()) == 1
    finally:
        source.close()


def test_a_wrong_password_is_a_clear_temporary_error(imap: Imap) -> None:
    from commtest.errors import ChannelError

    source = ImapSource(imap.settings(imap_password="wrong"))
    with pytest.raises(ChannelError) as info:
        source.fetch_new()
    assert info.value.permanent is False
    assert info.value.message.startswith(f"IMAP 127.0.0.1:{imap.port} INBOX: LoginError")
