"""SMS end to end: the reply code acknowledges, a wrong code is answered politely and
acknowledges nothing, STOP blocks the number, delivery reports are recorded."""
from __future__ import annotations

from sqlalchemy.engine import Engine

from channels.sms.replies import codes_in
from channels.twilio.fake_script import CallScript, FakeScript, SmsScript
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Endpoint
from tests.channels.twilio_support import TWO_SMS, TWO_VOICE, TwilioWorld, twilio_world

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


def test_stop_blocks_the_number_and_twilio_refuses_it_afterwards(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls=NOBODY_CALLS, messages={TWO_SMS: [SmsScript(replies=(("STOP", 30),))]}))
    for channel in (*w.voice, *w.sms):
        channel.simulated = False  # type: ignore[attr-defined]  # as the real API: the directory learns it
    run_id = w.run()
    [sms] = sms_pings(w, run_id)
    assert (sms.state, sms.outcome) == ("failed", "blocked")
    assert "replied STOP" in (sms.error or "")
    with session_scope(engine) as s:
        endpoint = s.get(Endpoint, sms.endpoint_id)
        assert endpoint is not None and endpoint.status == "suspect"
    from channels.twilio.fake_play import UNSUBSCRIBED

    assert answers(w) == [UNSUBSCRIBED]  # Twilio answers STOP itself; we add nothing
    # The next run: Twilio refuses the number (21610) and the attempt is blocked, not retried.
    run2 = w.run()
    [again] = sms_pings(w, run2)
    assert (again.state, again.outcome) == ("failed", "blocked")
    assert "21610" in (again.error or "")
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
    assert answers(w) == []
    assert w.events(run_id, "ping.reply_refused") == []
    w.close()
