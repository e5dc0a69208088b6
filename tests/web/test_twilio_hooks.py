"""The Twilio webhooks: only Twilio's signed requests change anything, each change once, in
whatever order Twilio's callbacks arrive."""
from __future__ import annotations

from collections.abc import Iterator
from email.utils import format_datetime
from urllib.parse import urlencode

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from channels.base import SendResult
from channels.twilio.fake_script import CallScript, FakeScript
from channels.twilio.signature import SIGNATURE_HEADER, sign
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Event, Ping
from scheduler.engine import Sent
from tests.channels.twilio_support import (
    ONE_SMS,
    ONE_VOICE,
    PUBLIC,
    SID,
    SMS_FROM,
    TOKEN,
    TwilioWorld,
    twilio_world,
)


@pytest.fixture
def w(engine: Engine, clock: FrozenClock) -> Iterator[TwilioWorld]:
    # Nobody answers by themselves: each test says what Twilio reports.
    world = twilio_world(engine, clock, FakeScript(default_call=CallScript("no-answer", ring_after=1000)))
    run_id = world.runs.create_run("phone-test")
    world.runs.start_run(run_id)
    world.runs.tick()  # both calls are placed
    world.run_id = run_id  # type: ignore[attr-defined]
    yield world
    world.close()


def voice_ping(w: TwilioWorld, address: str = ONE_VOICE) -> Ping:
    return next(p for p in w.pings(w.run_id) if p.address == address and p.channel == "voice")  # type: ignore[attr-defined]


def n_events(w: TwilioWorld) -> int:
    with session_scope(w.engine) as s:
        return int(s.exec(select(func.count()).select_from(Event)).one())


def post(w: TwilioWorld, path: str, params: dict[str, str], *, token: str = TOKEN, signature: str | None = "sign",
         signed_url: str | None = None) -> tuple[int, str]:
    url = f"{PUBLIC}/hooks/twilio/{path}"
    headers = {}
    if signature == "sign":
        headers[SIGNATURE_HEADER] = sign(token, signed_url or url, params)
    elif signature is not None:
        headers[SIGNATURE_HEADER] = signature
    answer = w.web.post(url, content=urlencode(params), headers={**headers,
                        "Content-Type": "application/x-www-form-urlencoded"})
    return answer.status_code, answer.text


def call_params(ping: Ping, status: str, **extra: str) -> dict[str, str]:
    return {"AccountSid": SID, "CallSid": ping.provider_ref or "", "CallStatus": status, "To": ping.address,
            "From": "+3225550199", "ApiVersion": "2010-04-01", "Direction": "outbound-api", **extra}


def status_path(ping: Ping) -> str:
    return f"voice/status?ping={ping.id}&provider=twilio"


def test_a_forged_signature_is_refused_and_changes_nothing(w: TwilioWorld) -> None:
    ping, before = voice_ping(w), n_events(w)
    status, _ = post(w, status_path(ping), call_params(ping, "busy"), token="not-the-auth-token")
    assert status == 403
    assert n_events(w) == before and voice_ping(w).state == "sent"


def test_a_missing_signature_is_refused(w: TwilioWorld) -> None:
    ping, before = voice_ping(w), n_events(w)
    assert post(w, status_path(ping), call_params(ping, "busy"), signature=None)[0] == 403
    assert post(w, status_path(ping), call_params(ping, "busy"), signature="")[0] == 403
    assert n_events(w) == before


def test_a_signature_over_another_url_is_refused(w: TwilioWorld) -> None:
    """The URL is ours (COMMTEST_PUBLIC_BASE_URL), never the Host header the request came with."""
    ping = voice_ping(w)
    other = f"http://testserver/hooks/twilio/{status_path(ping)}"
    assert post(w, status_path(ping), call_params(ping, "busy"), signed_url=other)[0] == 403
    # ... and a signature over our URL with the query changed (another ping) is refused too
    tampered = f"{PUBLIC}/hooks/twilio/voice/status?ping={ping.id}&provider=twilio"
    assert post(w, f"voice/status?ping={(ping.id or 0) + 1}&provider=twilio", call_params(ping, "busy"),
                signed_url=tampered)[0] == 403
    assert voice_ping(w).state == "sent"


def test_an_account_we_do_not_know_is_refused(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    params = call_params(ping, "busy", AccountSid="AC" + "9" * 32)
    assert post(w, status_path(ping), params)[0] == 403


def test_an_oversized_body_is_refused_before_it_is_read(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    status, _ = post(w, status_path(ping), call_params(ping, "busy", Padding="x" * 20_000))
    assert status == 413
    assert voice_ping(w).state == "sent"


def test_a_valid_callback_for_an_unknown_call_is_answered_200_and_changes_nothing(w: TwilioWorld) -> None:
    ping, before = voice_ping(w), n_events(w)
    assert post(w, "voice/status?ping=999999&provider=twilio", call_params(ping, "busy"))[0] == 200
    assert post(w, "voice/status?provider=twilio", call_params(ping, "busy"))[0] == 200
    status, body = post(w, "voice/gather?ping=999999&n=0&say=x", call_params(ping, "in-progress", Digits="1"))
    assert status == 200 and "<Hangup" in body
    status, body = post(w, "sms/inbound", {"AccountSid": SID, "MessageSid": "SM" + "1" * 32, "From": "+32470999999",
                                           "To": SMS_FROM, "Body": "123456"})
    assert status == 200 and "<Message>" not in body
    assert n_events(w) == before


def test_a_callback_naming_another_calls_sid_changes_nothing(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    params = call_params(ping, "busy", CallSid="CA" + "f" * 32)
    assert post(w, status_path(ping), params)[0] == 200
    assert voice_ping(w).state == "sent"


def test_ringing_starts_the_response_time_at_twilios_timestamp(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    w.clock.advance(4)
    rang = w.clock.now()
    w.clock.advance(3)  # the callback arrives a little later
    post(w, status_path(ping), call_params(ping, "ringing", Timestamp=format_datetime(rang, usegmt=True)))
    assert voice_ping(w).delivered_at == rang


def test_a_replayed_callback_changes_nothing(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    post(w, status_path(ping), call_params(ping, "in-progress"))
    post(w, status_path(ping), call_params(ping, "busy"))
    settled = n_events(w)
    for _ in range(3):
        assert post(w, status_path(ping), call_params(ping, "busy"))[0] == 200
        assert post(w, status_path(ping), call_params(ping, "in-progress"))[0] == 200
    assert n_events(w) == settled
    assert len(w.events(w.run_id, "ping.answered")) == 1  # type: ignore[attr-defined]


def test_a_replayed_key_press_acknowledges_once(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    gather = f"voice/gather?ping={ping.id}&provider=twilio&n=0&say={_say(w, ping)}"
    for _ in range(3):
        status, body = post(w, gather, call_params(ping, "in-progress", Digits="1"))
        assert status == 200 and "Dank u, uw bevestiging is geregistreerd. Tot ziens." in body and "<Hangup" in body
    assert len(w.events(w.run_id, "ping.acked")) == 1  # type: ignore[attr-defined]
    after = voice_ping(w)
    assert (after.state, after.outcome, after.ack_method) == ("acked", "acked", "keypress")


def test_out_of_order_callbacks_a_busy_end_before_the_ringing_keeps_busy(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    post(w, status_path(ping), call_params(ping, "busy"))
    post(w, status_path(ping), call_params(ping, "ringing"))
    post(w, status_path(ping), call_params(ping, "in-progress"))
    after = voice_ping(w)
    assert (after.state, after.outcome) == ("expired", "busy")


def test_out_of_order_callbacks_completed_before_answered_then_the_key_press_counts(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    post(w, status_path(ping), call_params(ping, "completed", CallDuration="20"))
    post(w, status_path(ping), call_params(ping, "in-progress"))
    assert voice_ping(w).state == "sent"  # an answered call is not an acknowledgement
    gather = f"voice/gather?ping={ping.id}&provider=twilio&n=0&say={_say(w, ping)}"
    post(w, gather, call_params(ping, "in-progress", Digits="1"))
    assert voice_ping(w).outcome == "acked"


def test_a_machine_answering_is_voicemail_and_never_an_acknowledgement(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    post(w, status_path(ping), call_params(ping, "in-progress"))
    post(w, f"voice/amd?ping={ping.id}&provider=twilio",
         {"AccountSid": SID, "CallSid": ping.provider_ref or "", "AnsweredBy": "machine_start"})
    after = voice_ping(w)
    assert (after.state, after.outcome, after.acked_at) == ("expired", "voicemail", None)


def test_a_person_answering_by_machine_detection_changes_nothing(w: TwilioWorld) -> None:
    ping, before = voice_ping(w), n_events(w)
    post(w, f"voice/amd?ping={ping.id}&provider=twilio",
         {"AccountSid": SID, "CallSid": ping.provider_ref or "", "AnsweredBy": "human"})
    assert n_events(w) == before


def test_another_key_repeats_the_message_and_after_three_says_goodbye(w: TwilioWorld) -> None:
    ping = voice_ping(w)
    say = _say(w, ping)
    status, body = post(w, f"voice/gather?ping={ping.id}&provider=twilio&n=0&say={say}",
                        call_params(ping, "in-progress", Digits="7"))
    assert status == 200
    assert "Dat was niet de toets 1." in body and body.count("<Gather") == 2
    assert f"ping={ping.id}&amp;provider=twilio&amp;n=1&amp;say=" in body
    assert "Dit is een communicatietest voor Centre One." in body  # the same message, again
    _, body = post(w, f"voice/gather?ping={ping.id}&provider=twilio&n=3&say={say}",
                   call_params(ping, "in-progress", Digits="7"))
    assert "<Gather" not in body and "Tot ziens." in body and "<Hangup" in body
    assert voice_ping(w).state == "sent"


def test_a_call_that_ends_before_the_engine_recorded_its_send_keeps_its_outcome(w: TwilioWorld) -> None:
    """Twilio can report a busy line before ``_record_sends`` commits (pacing makes batches slow)."""
    with session_scope(w.engine) as s:
        ping = s.exec(select(Ping).where(Ping.address == ONE_VOICE)).one()
        ping.state, ping.provider_ref, ping.sent_at, ping.deadline_at = "dispatching", None, None, None
        s.add(ping)
    ping = voice_ping(w)
    post(w, status_path(ping), call_params(ping, "busy", CallSid="CA" + "2" * 32))
    assert (voice_ping(w).state, voice_ping(w).outcome) == ("expired", "busy")
    from channels.base import OutgoingPing
    from scheduler.dispatch import Claimed

    claimed = Claimed(ping.id or 0, OutgoingPing(  # what the dispatcher hands the recorder for this call
        ping_id=ping.id or 0, run_id=ping.run_id, channel=ping.channel, address=ping.address, language="nl",
        subject="", body="", html=None, ack_url="", ack_code="000000", token="t", deadline_at=w.clock.now(),
        organisation_code=ping.organisation_code, contact_name="", attempt=ping.attempt), 300.0, "twilio")
    w.runs._record_sends([claimed], [Sent(SendResult("CA" + "2" * 32), "twilio", True)])
    after = voice_ping(w)
    assert (after.state, after.outcome, after.provider_ref) == ("expired", "busy", "CA" + "2" * 32)
    assert after.sent_at is not None


def test_an_sms_reply_from_an_unknown_number_gets_no_answer(w: TwilioWorld) -> None:
    status, body = post(w, "sms/inbound", {"AccountSid": SID, "MessageSid": "SM" + "3" * 32, "From": ONE_SMS,
                                           "To": SMS_FROM, "Body": "123456"})
    assert status == 200 and "<Message>" not in body  # no SMS was sent to this number yet


def _say(w: TwilioWorld, ping: Ping) -> str:
    call = next(c for c in w.fake.calls if c.sid == ping.provider_ref)
    twiml = call.param("Twiml")
    return twiml.split("say=", 1)[1].split('"', 1)[0]
