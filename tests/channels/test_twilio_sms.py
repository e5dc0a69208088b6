"""SMS end to end: the reply code acknowledges, a wrong code is answered politely and
acknowledges nothing, STOP blocks the number's endpoint until START, delivery reports are recorded."""
from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from channels.sms.replies import codes_in
from channels.twilio.fake_script import CallScript, FakeScript, SmsScript
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Endpoint, Event
from tests.channels.twilio_support import SID, SMS_FROM, TWO_SMS, TWO_VOICE, TwilioWorld, twilio_world

NOBODY_CALLS = {TWO_VOICE: [CallScript("no-answer")]}  # XB-TWO's calls go unanswered: the SMS follows


def sms_pings(w: TwilioWorld, run_id: int) -> list:  # type: ignore[type-arg]
    return [p for p in w.pings(run_id) if p.channel == "sms"]


def answers(w: TwilioWorld) -> list[str]:
    return [m.body for m in w.fake.player.sent_messages if m.to == TWO_SMS]


def test_a_reply_with_the_code_from_the_endpoints_number_acknowledges(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS, messages={TWO_SMS: [SmsScript(replies=(("ok {code}", 45),))]}))
    run_id = w.run()
    [sms] = sms_pings(w, run_id)
    assert (sms.outcome, sms.ack_method, sms.ack_by) == ("acked", "sms-reply", "+49******010")
    assert sms.delivered_at is not None and sms.acked_at is not None
    assert (sms.acked_at - sms.delivered_at).total_seconds() == 45  # measured from the delivery
    assert answers(w) == ["Vielen Dank, Ihre Bestätigung wurde erfasst."]  # in the contact's language
    assert "Antworten Sie" in w.fake.messages[0].body and sms.ack_code in w.fake.messages[0].body
    w.close()


def test_a_wrong_code_gets_a_polite_answer_and_no_acknowledgement(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS, messages={TWO_SMS: [SmsScript(replies=(("000000", 30),))]}))
    run_id = w.run()
    [sms] = sms_pings(w, run_id)
    assert (sms.outcome, sms.acked_at) == ("delivered_no_ack", None)
    assert answers(w) == ["Leider passt dieser Code nicht zu unserer Nachricht. Bitte antworten Sie mit dem Code, "
                          "der darin steht."]
    [refused] = w.events(run_id, "ping.reply_refused")
    assert refused.ping_id == sms.id and refused.data["sender"] == "+49******010"
    w.close()


def test_a_wrong_code_first_then_the_right_one_acknowledges(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS,
                                               messages={TWO_SMS: [SmsScript(replies=(("123", 20), ("{code}", 60)))]}))
    run_id = w.run()
    [sms] = sms_pings(w, run_id)
    assert sms.outcome == "acked"
    assert len(answers(w)) == 2 and answers(w)[1] == "Vielen Dank, Ihre Bestätigung wurde erfasst."
    w.close()


def real(w: TwilioWorld) -> TwilioWorld:
    for channel in (*w.voice, *w.sms):
        channel.simulated = False  # type: ignore[attr-defined]  # as the real API: the directory learns it
    return w


def sms_creates_to(w: TwilioWorld, number: str) -> int:
    return sum(1 for what, fields in w.fake.creates() if what == "Messages" and fields.get("To") == [number])


def endpoint_of(engine: Engine, endpoint_id: int | None) -> Endpoint:
    with session_scope(engine) as s:
        endpoint = s.get(Endpoint, endpoint_id)
        assert endpoint is not None
        s.expunge(endpoint)
        return endpoint


def status_events(engine: Engine, endpoint_id: int | None) -> list[Event]:
    with session_scope(engine) as s:
        rows = s.exec(select(Event).where(Event.kind == "endpoint.status").order_by(col(Event.id))).all()
        return [e for e in rows if e.data.get("endpoint_id") == endpoint_id]


def test_stop_blocks_the_endpoint_with_the_reason_and_the_next_run_sends_it_no_sms(engine: Engine,
                                                                                 clock: FrozenClock) -> None:
    w = real(twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS,
                                                    messages={TWO_SMS: [SmsScript(replies=(("STOP", 30),))]})))
    run_id = w.run()
    [sms] = sms_pings(w, run_id)
    assert (sms.state, sms.outcome) == ("failed", "blocked")
    assert "replied STOP" in (sms.error or "")
    endpoint = endpoint_of(engine, sms.endpoint_id)
    assert (endpoint.status, endpoint.last_outcome) == ("blocked", "blocked")
    [blocked] = status_events(engine, sms.endpoint_id)
    assert blocked.data["status"] == "blocked" and "replied STOP" in blocked.data["reason"]
    assert blocked.at == sms.settled_at and blocked.run_id == run_id
    from channels.twilio.fake_play import UNSUBSCRIBED

    assert answers(w) == [UNSUBSCRIBED]  # Twilio answers STOP itself; we add nothing
    assert sms_creates_to(w, TWO_SMS) == 1
    # The next run skips the blocked number: no SMS is created, the escalation finds a gap.
    run2 = w.run()
    assert sms_pings(w, run2) == []
    assert sms_creates_to(w, TWO_SMS) == 1
    [gap] = [e for e in w.events(run2, "run.gap") if e.organisation_code == "XB-TWO"]
    assert gap.channel == "sms"
    w.close()


def test_twilio_error_21610_on_the_create_blocks_the_endpoint_too(engine: Engine, clock: FrozenClock) -> None:
    w = real(twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS)))
    w.fake.accounts[SID].opted_out.add((SMS_FROM, TWO_SMS))  # the number sent STOP before we knew it
    run_id = w.run()
    [sms] = sms_pings(w, run_id)
    assert (sms.state, sms.outcome) == ("failed", "blocked")
    assert "21610" in (sms.error or "")
    assert endpoint_of(engine, sms.endpoint_id).status == "blocked"
    [blocked] = status_events(engine, sms.endpoint_id)
    assert "21610" in blocked.data["reason"]
    w.close()


def test_start_from_the_blocked_number_makes_its_endpoint_active_again(engine: Engine, clock: FrozenClock) -> None:
    w = real(twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS, messages={
        TWO_SMS: [SmsScript(replies=(("STOP", 30),)), SmsScript(replies=(("{code}", 30),))]})))
    [sms] = sms_pings(w, w.run())
    assert endpoint_of(engine, sms.endpoint_id).status == "blocked"
    clock.advance(hours=2)
    w.fake.officer_texts(TWO_SMS, SMS_FROM, "Start")
    endpoint = endpoint_of(engine, sms.endpoint_id)
    assert endpoint.status == "active"
    unblocked = status_events(engine, sms.endpoint_id)[-1]
    assert unblocked.data["status"] == "active" and "START" in unblocked.data["reason"]
    assert unblocked.at == clock.now() and unblocked.channel == "sms" and unblocked.organisation_code == "XB-TWO"
    from channels.twilio.fake_play import RESUBSCRIBED

    assert answers(w)[-1] == RESUBSCRIBED  # Twilio answers START itself; we add nothing
    # Twilio delivers to it again, and so do we.
    [again] = sms_pings(w, w.run())
    assert again.outcome == "acked" and sms_creates_to(w, TWO_SMS) == 2
    w.close()


@pytest.mark.parametrize("word", ["UNSTOP", "yes"])
def test_twilios_other_opt_in_words_unblock_the_number_as_well(engine: Engine, clock: FrozenClock, word: str) -> None:
    w = real(twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS,
                                                    messages={TWO_SMS: [SmsScript(replies=(("STOP", 30),))]})))
    [sms] = sms_pings(w, w.run())
    w.fake.officer_texts(TWO_SMS, SMS_FROM, word)
    assert endpoint_of(engine, sms.endpoint_id).status == "active"
    w.close()


def test_start_from_a_number_that_is_not_blocked_changes_nothing(engine: Engine, clock: FrozenClock) -> None:
    w = real(twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS)))
    [sms] = sms_pings(w, w.run())
    w.fake.officer_texts(TWO_SMS, SMS_FROM, "START")
    assert endpoint_of(engine, sms.endpoint_id).status == "active"
    assert status_events(engine, sms.endpoint_id) == []
    w.close()


def test_an_undelivered_sms_is_a_failure_of_the_attempt(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS,
                                               messages={TWO_SMS: [SmsScript(delivery="undelivered", error_code=30008)]}))
    run_id = w.run()
    [sms] = sms_pings(w, run_id)
    assert (sms.state, sms.outcome) == ("failed", "provider_failure")
    assert "30008" in (sms.error or "")
    w.close()


def test_an_sms_to_an_unknown_handset_marks_the_endpoint_wrong(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS,
                                               messages={TWO_SMS: [SmsScript(delivery="undelivered", error_code=30005)]}))
    run_id = w.run()
    [sms] = sms_pings(w, run_id)
    assert sms.outcome == "invalid_endpoint"
    w.close()


def test_the_code_is_found_however_the_officer_types_it() -> None:
    assert "482913" in codes_in("482913")
    assert "482913" in codes_in("Ontvangen: 482 913, groet")
    assert "482913" in codes_in("ok 482913!")
    assert "482913" not in codes_in("48291")


def test_start_and_help_are_left_to_twilio_not_called_a_wrong_code(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS,
                                               messages={TWO_SMS: [SmsScript(replies=(("HELP", 20), ("Start", 40)))]}))
    run_id = w.run()
    from channels.twilio.fake_play import RESUBSCRIBED

    assert answers(w) == [RESUBSCRIBED]  # Twilio's own answer to START; we add nothing
    assert w.events(run_id, "ping.reply_refused") == []
    w.close()


def test_twilios_opt_in_words_and_its_opt_out_type_are_read_as_an_opt_in() -> None:
    from channels.sms.replies import inbound_sms

    assert inbound_sms({"Body": " unstop ", "From": TWO_SMS}).opt_in
    assert inbound_sms({"Body": "Ja, START", "From": TWO_SMS, "OptOutType": "START"}).opt_in
    assert not inbound_sms({"Body": "STOP", "From": TWO_SMS}).opt_in
    assert not inbound_sms({"Body": "start 123456", "From": TWO_SMS}).opt_in  # a reply, not the keyword
