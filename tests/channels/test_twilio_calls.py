"""Each way a test call can go, end to end: the engine places it with the real SDK, the fake
Twilio plays the officer and calls the web app's webhooks, the engine settles and retries."""
from __future__ import annotations

from sqlalchemy.engine import Engine

from channels.twilio.fake_script import CallScript, FakeScript
from commtest.clock import FrozenClock
from tests.channels.twilio_support import ONE_VOICE, TWO_SMS, TWO_VOICE, twilio_world


def outcomes(pings: list, address: str) -> list[tuple[int, str | None]]:  # type: ignore[type-arg]
    return [(p.attempt, p.outcome) for p in pings if p.address == address]


def test_an_officer_who_presses_1_acknowledges_and_the_time_runs_from_the_ringing(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(default_call=CallScript(ring_after=3, answer_after=9, keys=(("1", 7),))))
    run_id = w.run()
    one = next(p for p in w.pings(run_id) if p.address == ONE_VOICE)
    assert (one.outcome, one.ack_method) == ("acked", "keypress")
    call = next(c for c in w.fake.calls if c.to == ONE_VOICE)
    rang = next(at for at, status in call.log if status == "ringing")
    assert one.delivered_at == rang
    assert one.acked_at is not None and (one.acked_at - rang).total_seconds() == 6 + 7  # answered +6, pressed +7
    assert call.digits == ["1"]
    assert call.spoken[0] == ("nl-NL", "Polly.Lotte", "Dit is een communicatietest voor Centre One. Druk op 1 om te bevestigen.")
    assert call.spoken[-1][2] == "Dank u, uw bevestiging is geregistreerd. Tot ziens."
    assert not one.ack_suspicious  # a key press on a call is a person
    two_call = next(c for c in w.fake.calls if c.to == TWO_VOICE)
    assert two_call.spoken[0][:2] == ("de-DE", "Polly.Marlene")
    w.close()


def test_a_busy_line_is_retried_and_the_retry_answered(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls={TWO_VOICE: [CallScript("busy"), CallScript("person")]}))
    run_id = w.run()
    assert outcomes(w.pings(run_id), TWO_VOICE) == [(1, "busy"), (2, "acked")]
    retry = [p for p in w.pings(run_id) if p.address == TWO_VOICE][1]
    first = [p for p in w.pings(run_id) if p.address == TWO_VOICE][0]
    assert retry.sent_at is not None and first.settled_at is not None
    assert (retry.sent_at - first.settled_at).total_seconds() >= 120  # the playbook's retry interval
    w.close()


def test_no_answer_is_retried_then_escalated_to_sms(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls={TWO_VOICE: [CallScript("no-answer")]}))
    run_id = w.run()
    pings = w.pings(run_id)
    assert outcomes(pings, TWO_VOICE) == [(1, "no_answer"), (2, "no_answer")]
    assert outcomes(pings, TWO_SMS) == [(1, "acked")]
    w.close()


def test_voicemail_is_never_an_acknowledgement_and_is_retried(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls={ONE_VOICE: [CallScript("machine")]}))
    run_id = w.run()
    pings = [p for p in w.pings(run_id) if p.address == ONE_VOICE]
    assert [(p.outcome, p.acked_at) for p in pings] == [("voicemail", None), ("voicemail", None)]
    assert all(c.answered_by == "machine_start" for c in w.fake.calls if c.to == ONE_VOICE)
    settled = w.events(run_id, "ping.settled")
    assert any(e.ping_id == pings[0].id and "answering machine" in e.data["reason"] for e in settled)
    w.close()


def test_another_key_repeats_the_message_and_then_1_acknowledges(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls={ONE_VOICE: [CallScript(keys=(("5", 4), ("1", 3)))]}))
    run_id = w.run()
    assert outcomes(w.pings(run_id), ONE_VOICE) == [(1, "acked")]
    call = next(c for c in w.fake.calls if c.to == ONE_VOICE)
    assert call.digits == ["5", "1"]
    texts = [text for _, _, text in call.spoken]
    assert "Dat was niet de toets 1. Hier is het bericht nog eens." in texts
    assert texts.count("Dit is een communicatietest voor Centre One. Druk op 1 om te bevestigen.") == 2
    w.close()


def test_silence_repeats_the_message_once_says_goodbye_and_waits_for_the_deadline(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls={ONE_VOICE: [CallScript(keys=())]}))
    run_id = w.run()
    pings = [p for p in w.pings(run_id) if p.address == ONE_VOICE]
    assert [p.outcome for p in pings] == ["delivered_no_ack", "delivered_no_ack"]
    call = next(c for c in w.fake.calls if c.to == ONE_VOICE)
    texts = [text for _, _, text in call.spoken]
    assert texts.count("Dit is een communicatietest voor Centre One. Druk op 1 om te bevestigen.") == 2
    assert texts[-1] == "We hebben geen bevestiging ontvangen. Tot ziens."
    assert call.status == "completed"
    w.close()


def test_a_number_that_does_not_exist_on_the_network_marks_the_endpoint_wrong(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls={ONE_VOICE: [CallScript("failed", sip="404")]}))
    run_id = w.run()
    assert outcomes(w.pings(run_id), ONE_VOICE)[0] == (1, "invalid_endpoint")
    w.close()


def test_a_call_that_failed_on_the_network_is_a_provider_failure_and_retried(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(calls={ONE_VOICE: [CallScript("failed", sip="503"), CallScript()]}))
    run_id = w.run()
    assert outcomes(w.pings(run_id), ONE_VOICE) == [(1, "provider_failure"), (2, "acked")]
    w.close()


def test_every_twilio_call_is_marked_simulated_against_the_fake(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock)
    run_id = w.run()
    assert all(p.simulated and p.provider == "twilio" for p in w.pings(run_id) if p.sent_at)
    sent = w.events(run_id, "ping.sent")
    assert sent and all(e.data["simulated"] is True and e.data["provider"] == "twilio" for e in sent)
    w.close()
