"""The SMTP provider against a real SMTP server (aiosmtpd in process), driven by the run engine."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.email.devserver import DevSmtpServer
from channels.email.message import plus_tag
from channels.email.smtp import SmtpChannel
from channels.registry import create_channel
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.errors import ChannelError
from commtest.models import Endpoint, Ping
from scheduler.records import token_hash
from tests.channels.email_support import email_engine, email_settings, free_port, outgoing, smtp, smtp_server  # noqa: F401
from tests.scheduler.seed import seed_directory, store_playbook


@pytest.fixture
def world(engine: Engine) -> Iterator[Engine]:
    seed_directory(engine)
    store_playbook(engine)
    yield engine


def email_pings(engine: Engine, run_id: int) -> list[Ping]:
    with session_scope(engine) as s:
        return list(s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "email").order_by(Ping.id)).all())


def test_the_provider_is_found_through_its_entry_point(smtp: DevSmtpServer) -> None:
    from commtest.clock import SystemClock

    assert isinstance(create_channel("email", email_settings(None, smtp), SystemClock()), SmtpChannel)


def test_a_run_sends_one_message_per_email_endpoint_with_its_headers(world: Engine, clock: FrozenClock,
                                                                     smtp: DevSmtpServer) -> None:
    eng = email_engine(world, clock, smtp)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    eng.close()
    received = {str(m["Delivered-To"]): m for m in smtp.messages()}
    assert sorted(received) == ["desk@xa-one.example", "desk@xb-two.example"]
    for ping in email_pings(world, run_id):
        msg = received[ping.address]
        assert ping.state == "sent"
        assert msg["Message-ID"] == ping.provider_ref and ping.provider_ref.startswith(f"<ping-{ping.id}.")
        token = plus_tag(str(msg["Reply-To"]))
        assert token is not None and token_hash(token) == ping.token_hash
        assert msg["Return-Path"] == f"<ack+{token}@coord.example>"  # the envelope sender
        assert msg["Content-Language"] == "en"  # the seed playbook only has English: the language used
        assert msg["X-Commtest-Ping"] == str(ping.id)
        text = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        assert text is not None and f"/ack/{token}" in text.get_content()
        assert html is not None and f"/ack/{token}" in html.get_content()


def test_a_5xx_on_rcpt_bounces_the_ping_and_marks_the_endpoint_suspect(world: Engine, clock: FrozenClock,
                                                                       smtp: DevSmtpServer) -> None:
    smtp.set_refusals({"desk@xa-one.example": (550, "5.1.1 mailbox unknown")})
    eng = email_engine(world, clock, smtp)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    eng.close()
    bounced = next(p for p in email_pings(world, run_id) if p.address == "desk@xa-one.example")
    assert (bounced.state, bounced.outcome) == ("failed", "bounced")
    assert "550" in (bounced.error or "")
    with session_scope(world) as s:
        assert s.get(Endpoint, bounced.endpoint_id).status == "suspect"  # type: ignore[union-attr]
    assert [str(m["Delivered-To"]) for m in smtp.messages()] == ["desk@xb-two.example"]


def test_a_4xx_is_a_provider_failure_that_is_retried(world: Engine, clock: FrozenClock, smtp: DevSmtpServer) -> None:
    smtp.set_refusals({"desk@xb-two.example": (451, "4.3.0 try again later")})
    eng = email_engine(world, clock, smtp)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    failed = next(p for p in email_pings(world, run_id) if p.address == "desk@xb-two.example")
    assert (failed.state, failed.outcome) == ("failed", "provider_failure")
    with session_scope(world) as s:
        assert s.get(Endpoint, failed.endpoint_id).status == "active"  # type: ignore[union-attr]
    retry = [p for p in email_pings(world, run_id) if p.escalated_from_id == failed.id]
    assert len(retry) == 1 and retry[0].state == "pending"  # the playbook allows one retry after 5m
    smtp.set_refusals({})
    clock.advance(minutes=5)
    eng.tick()
    eng.close()
    assert [p.state for p in email_pings(world, run_id) if p.id == retry[0].id] == ["sent"]
    assert sum(1 for m in smtp.messages() if str(m["Delivered-To"]) == "desk@xb-two.example") == 1


def test_an_unreachable_server_is_a_temporary_error(clock: FrozenClock, smtp: DevSmtpServer) -> None:
    settings = email_settings(None, smtp, smtp_port=free_port(), smtp_timeout_seconds=2.0)
    with pytest.raises(ChannelError) as info:
        SmtpChannel(settings, clock).send(outgoing())
    assert info.value.permanent is False and "unreachable" in info.value.message


def test_a_5xx_refusal_names_the_masked_address_and_the_server_answer(clock: FrozenClock, smtp: DevSmtpServer) -> None:
    smtp.set_refusals({"*@xa-one.example": (550, "5.1.1 mailbox unknown")})
    with pytest.raises(ChannelError) as info:
        SmtpChannel(email_settings(None, smtp), clock).send(outgoing())
    assert info.value.permanent is True and info.value.code == "bounced"
    assert str(info.value) == "d***@xa-one.example refused: 550 5.1.1 mailbox unknown"
