"""Provider faults: an SMTP server that answers 4xx and 5xx, times out and drops the
connection mid-transaction. Each attempt ends as the rules say (a temporary failure, a
timeout or a dropped line is ``provider_failure`` and retried per the playbook; a 5xx on
RCPT is ``bounced`` and makes the endpoint suspect), and no mailbox ever receives the same
attempt twice. The engine and the SMTP client are the real ones, on a frozen clock."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.email.smtp import SmtpChannel
from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxScript
from commtest.clock import FrozenClock
from commtest.db import read_session
from commtest.models import Endpoint, Ping, TestRun
from commtest.settings import Settings, load_settings
from scheduler.ack_group import acknowledge_token
from scheduler.engine import RunEngine
from tests.faults import figures
from tests.faults.smtp_faults import FaultySmtpServer
from tests.scheduler.seed import seed_bulk, store_playbook

pytestmark = pytest.mark.faults

PLAYBOOK = """
id: smtp-faults
title: SMTP faults
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
    ack_deadline: 10m
    retries: 2
    retry_interval: 1m
templates:
  ping:
    en:
      subject: "Communication test {{ run.id }}"
      body: "Please confirm: {{ ack_url }}"
"""

# Per mailbox: what the server does with each attempt, and the (outcome per attempt, messages
# the mailbox receives) the rules give. Every message that arrives is answered at once.
SCRIPTS: dict[str, tuple[list[str], list[str], int]] = {
    "desk0@bulk0.example": (["accept"], ["acked"], 1),
    "desk1@bulk0.example": (["rcpt-4xx", "accept"], ["provider_failure", "acked"], 1),
    "desk2@bulk0.example": (["rcpt-5xx"], ["bounced"], 0),
    "desk3@bulk0.example": (["data-4xx", "accept"], ["provider_failure", "acked"], 1),
    "desk4@bulk0.example": (["rcpt-timeout", "accept"], ["provider_failure", "acked"], 1),
    "desk5@bulk0.example": (["data-drop", "accept"], ["provider_failure", "acked"], 1),
    # The server took the whole message but never said so: the client cannot tell it from a
    # lost one, so it is a provider failure and a retry is planned — but the officer did get
    # it, and the answer counts (the retry, not sent yet, is then cancelled).
    "desk6@bulk0.example": (["data-timeout", "accept"], ["acked"], 1),
    "desk7@bulk0.example": (["rcpt-4xx"], ["provider_failure"] * 3, 0),
}


@pytest.fixture
def faulty() -> Iterator[FaultySmtpServer]:
    with FaultySmtpServer({a: script for a, (script, _, _) in SCRIPTS.items()}) as server:
        yield server


def test_smtp_4xx_5xx_timeouts_and_dropped_connections_end_as_the_rules_say_and_nothing_arrives_twice(
        engine: Engine, clock: FrozenClock, faulty: FaultySmtpServer) -> None:
    seed_bulk(engine, organisations=1, per_org=len(SCRIPTS))
    store_playbook(engine, PLAYBOOK, "smtp-faults")
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), channels={"email": "smtp"},
                             smtp_host=faulty.host, smtp_port=faulty.port, smtp_timeout_seconds=1.0,
                             mail_from="commtest@coord.example", reply_address="ack@coord.example", dispatch_workers=4)
    quiet = SandboxScript(default=Rule("never"))
    chans = ChannelSet(settings, clock, {"email": SmtpChannel(settings, clock),
                                         "voice": SandboxChannel("voice", clock, quiet),
                                         "sms": SandboxChannel("sms", clock, quiet)})
    runs = RunEngine(engine, settings, clock, chans, actor="test")
    answered: set[int] = set()
    try:
        run_id = runs.create_run("smtp-faults")
        runs.start_run(run_id)
        for _ in range(4):  # the first attempts, then two rounds of retries a minute apart
            runs.tick()
            for message in list(faulty.delivered):
                if message.ping_id not in answered:  # the officer answers what reached the mailbox
                    answered.add(message.ping_id or 0)
                    _answer(engine, clock, settings, message.token)
            clock.advance(61)
        clock.advance(minutes=11)  # past every deadline: whatever is still open expires
        runs.tick()
        runs.tick()
    finally:
        runs.close()

    with read_session(engine) as s:
        pings = s.exec(select(Ping).where(Ping.run_id == run_id).order_by(Ping.attempt)).all()
        run = s.get(TestRun, run_id)
        endpoints = {e.address: e for e in s.exec(select(Endpoint).where(Endpoint.kind == "email")).all()}
    assert run is not None and run.status == "completed"
    got = {address: [p.outcome for p in pings if p.address == address and p.outcome != "cancelled"]
           for address in SCRIPTS}
    assert got == {address: outcomes for address, (_, outcomes, _) in SCRIPTS.items()}
    assert endpoints["desk2@bulk0.example"].status == "suspect"
    assert {a: e.status for a, e in endpoints.items() if a != "desk2@bulk0.example"} == dict.fromkeys(
        set(endpoints) - {"desk2@bulk0.example"}, "active")
    # Each mailbox received what the script delivered, never the same attempt twice; and every
    # attempt the database calls sent is in the mailbox.
    per_ping = Counter(d.ping_id for d in faulty.delivered)
    assert [p for p, n in per_ping.items() if n > 1] == []
    assert {a: len(faulty.received_by(a)) for a in SCRIPTS} == {a: n for a, (_, _, n) in SCRIPTS.items()}
    assert {p.id for p in pings if p.sent_at is not None} <= set(per_ping)
    faults = [b for _, b in faulty.events if b != "accept"]
    assert sorted(set(faults)) == ["data-4xx", "data-drop", "data-timeout", "rcpt-4xx", "rcpt-5xx", "rcpt-timeout"]
    figures.add(smtp_faults=len(faults))


def _answer(engine: Engine, clock: FrozenClock, settings: Settings, token: str | None) -> None:
    """What the acknowledgement page's POST does with the link of a message that arrived."""
    assert token is not None
    outcome = acknowledge_token(engine, clock, settings, token, method="link", by="Desk officer", user_agent=None,
                                source="127.0.0.1")
    assert outcome.status == "acked", outcome
