"""The reply-mailbox reader (``scheduler.inbound``): its loop when the database goes away under it,
and what it logs and stores of a bounce."""
from __future__ import annotations

import logging
import mailbox
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool
from sqlmodel import func, select

from channels.email.devserver import DevSmtpServer
from channels.email.inbound import RawMail, classify
from channels.email.maildir import MaildirSource
from channels.email.message import build_reply
from commtest.clock import FrozenClock
from commtest.db import make_engine, read_session
from commtest.models import Event, InboundMessage, Ping
from scheduler.inbound import record_inbound, serve_inbound
from tests.channels.email_support import email_engine, email_settings, smtp, smtp_server  # noqa: F401
from tests.channels.test_email_inbound import dsn_bytes
from tests.scheduler.seed import seed_directory, store_playbook


class DatabaseAway:
    """An engine to the test database whose every connection is refused while ``down``:
    what a PostgreSQL restart or failover looks like to its clients."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url, poolclass=NullPool)  # every checkout connects: nothing pooled survives
        self.down = True
        self.refused = 0

        @event.listens_for(self.engine, "do_connect")
        def _refuse(dialect: Any, _record: Any, _cargs: Any, _cparams: Any) -> None:
            if self.down:
                self.refused += 1
                raise dialect.loaded_dbapi.OperationalError("connection refused: the database is restarting")


def wait_until(predicate: Any, what: str, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_the_reader_keeps_going_while_the_database_is_away_and_records_the_reply_once_when_it_is_back(
        engine: Engine, clock: FrozenClock, smtp: DevSmtpServer, tmp_path: Path) -> None:  # noqa: F811
    # Found by the fault suite (tests/faults/test_postgres_restart.py): a database error ended
    # the reader's thread for good, so replies were no longer read after a PostgreSQL restart.
    seed_directory(engine)
    store_playbook(engine)
    runs = email_engine(engine, clock, smtp)
    run_id = runs.create_run("test-playbook")
    runs.start_run(run_id)
    runs.tick()
    runs.close()
    original = next(m for m in smtp.messages() if str(m["Delivered-To"]) == "desk@xa-one.example")
    replies = mailbox.Maildir(tmp_path / "Replies", create=True)
    replies.add(bytes(build_reply(original, "Jan Peeters <jan.peeters@xa-one.example>", "Ontvangen.")))

    away = DatabaseAway(engine.url.render_as_string(hide_password=False))
    settings = email_settings(engine, smtp, imap_poll_seconds=0.05)
    stop = threading.Event()
    reader = threading.Thread(target=serve_inbound, args=(away.engine, clock, settings,
                                                          MaildirSource(tmp_path / "Replies"), stop), daemon=True)
    reader.start()
    try:
        wait_until(lambda: away.refused >= 3, "the reader to try the database a few times")
        assert reader.is_alive(), "the mail reader stopped when the database went away"
        away.down = False
        wait_until(lambda: _acked(engine) == 1, "the reply to be recorded once the database is back")
        time.sleep(0.2)  # more polls: the reply is not counted again
        assert reader.is_alive()
    finally:
        stop.set()
        reader.join(5)
        away.engine.dispose()
    with read_session(engine) as s:
        assert s.exec(select(func.count()).select_from(InboundMessage)).one() == 1
        assert s.exec(select(func.count()).select_from(Event).where(Event.kind == "ping.acked")).one() == 1
        ping = s.exec(select(Ping).where(Ping.address == "desk@xa-one.example", Ping.channel == "email")).one()
    assert (ping.state, ping.ack_method) == ("acked", "email-reply")


def _acked(engine: Engine) -> int:
    with read_session(engine) as s:
        return int(s.exec(select(func.count()).select_from(Ping).where(Ping.state == "acked")).one())


def test_a_bounce_quoting_the_address_and_a_phone_number_is_logged_and_stored_masked(
        engine: Engine, clock: FrozenClock, smtp: DevSmtpServer, caplog) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    seed_directory(engine)
    store_playbook(engine)
    runs = email_engine(engine, clock, smtp)
    run_id = runs.create_run("test-playbook")
    runs.start_run(run_id)
    runs.tick()
    runs.close()
    original = next(m for m in smtp.messages() if str(m["Delivered-To"]) == "desk@xa-one.example")
    token = str(original["Reply-To"]).split("+", 1)[1].split("@", 1)[0]
    raw = dsn_bytes(token, with_original=False).replace(
        b"550 5.1.1 user unknown", b"550 5.1.1 user unknown, the desk moved to +32 2 555 01 10")
    mail = classify(RawMail("1", raw))
    assert "desk@xa-one.example" in mail.detail and "+32 2 555 01 10" in mail.detail  # what the bounce says
    with caplog.at_level(logging.INFO, logger="scheduler.inbound"):
        [result] = record_inbound(engine, clock, email_settings(engine, smtp), [mail])
    assert (result.classification, result.outcome) == ("bounce", "bounced")
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "scheduler.inbound")
    assert "inbound bounce" in logged
    with read_session(engine) as s:
        [stored] = s.exec(select(InboundMessage)).all()
        ping = s.exec(select(Ping).where(Ping.address == "desk@xa-one.example", Ping.channel == "email")).one()
        reasons = [str(e.data.get("reason")) for e in s.exec(select(Event).where(Event.ping_id == ping.id)).all()
                   if e.data.get("reason")]
    for text in (logged, result.detail, stored.summary, ping.error or "", *reasons):
        assert "desk@xa-one.example" not in text and "555 01 10" not in text and "3225550110" not in text, text
    assert "d***@xa-one.example" in logged and "+32*****110" in logged and "5.1.1" in logged
