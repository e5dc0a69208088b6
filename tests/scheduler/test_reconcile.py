"""After a crash, a ping left dispatching is looked up at Twilio before it is marked unknown."""
from __future__ import annotations

from sqlalchemy.engine import Engine

from channels.twilio.fake_script import CallScript, FakeScript
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Ping
from scheduler.dispatch import DueQueue
from tests.channels.twilio_support import ONE_VOICE, TWO_SMS, TWO_VOICE, TwilioWorld, twilio_world


def crash_after_claiming(w: TwilioWorld, run_id: int, n: int) -> list:  # type: ignore[type-arg]
    """Claim ``n`` due attempts (durably ``dispatching``), as the engine does, then 'crash'."""
    claimed = w.runs._claim(w.runs._prepare(DueQueue(n), n))
    assert len(claimed) == n
    return claimed


def state(w: TwilioWorld, ping_id: int) -> Ping:
    with session_scope(w.engine) as s:
        ping = s.get(Ping, ping_id)
        assert ping is not None
        return ping


def test_a_call_twilio_has_is_recorded_as_sent_with_its_sid_and_goes_on(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(default_call=CallScript(keys=(("1", 5),))))
    run_id = w.runs.create_run("phone-test")
    w.runs.start_run(run_id)
    placed, lost = sorted(crash_after_claiming(w, run_id, 2), key=lambda c: c.outgoing.address)
    assert placed.outgoing.address == ONE_VOICE
    w.voice[0].send(placed.outgoing)  # the provider call went out; the process died before recording it
    clock.advance(20)
    assert w.runs.recover() == 1  # only the one Twilio does not know is unknown
    found = state(w, placed.ping_id)
    assert found.state == "sent" and found.provider_ref == w.fake.calls_to(ONE_VOICE)[0].sid
    assert found.sent_at == w.fake.calls_to(ONE_VOICE)[0].created_at
    [event] = [e for e in w.events(run_id, "ping.sent") if e.ping_id == placed.ping_id]
    assert event.data["reconciled"] is True and event.data["provider"] == "twilio"
    assert state(w, lost.ping_id).state == "unknown"
    assert w.fake.calls_to(TWO_VOICE) == []  # never resent
    w.advance(60)  # the call's webhooks carry the ping id: the key press counts
    assert state(w, placed.ping_id).outcome == "acked"
    w.close()


def test_two_calls_to_the_number_in_the_window_leave_it_unknown(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock)
    run_id = w.runs.create_run("phone-test")
    w.runs.start_run(run_id)
    claimed = next(c for c in crash_after_claiming(w, run_id, 2) if c.outgoing.address == ONE_VOICE)
    w.voice[0].send(claimed.outgoing)
    w.voice[0].send(claimed.outgoing)
    w.runs.recover()
    assert state(w, claimed.ping_id).state == "unknown"
    w.close()


def test_an_sms_is_found_by_its_number_and_reply_code(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls={TWO_VOICE: [CallScript("no-answer")]}))
    run_id = w.runs.create_run("phone-test")
    w.runs.start_run(run_id)
    for _ in range(200):
        if any(p.channel == "sms" and p.sent_at for p in w.pings(run_id)):
            break
        w.advance(10)
    sms = next(p for p in w.pings(run_id) if p.channel == "sms")
    sid = w.fake.messages_to(TWO_SMS)[0].sid
    with session_scope(engine) as s:  # as if the process died right after Twilio accepted it
        row = s.get(Ping, sms.id)
        assert row is not None
        row.state, row.provider_ref, row.sent_at, row.deadline_at = "dispatching", None, None, None
        s.add(row)
    w.runs.recover()
    found = state(w, sms.id or 0)
    assert found.state == "sent" and found.provider_ref == sid and found.deadline_at is not None
    w.close()
