"""What the Twilio providers send: the exact REST parameters the SDK puts on the wire, the
TwiML of a call and the language it speaks, the SMS with its code and validity period."""
from __future__ import annotations

import base64
from datetime import datetime, timedelta
from xml.etree import ElementTree as ET

import pytest

from channels.base import AlternativeText, OutgoingPing
from channels.sms.twilio import TwilioSmsChannel
from channels.twilio.config import TwilioAccount
from channels.twilio.fake import FAKE_BASE, FakeTwilio
from channels.voice.speech import choose_speech
from channels.voice.twilio import TwilioVoiceChannel
from channels.voice.twiml import MAX_TWIML, unpack_speech
from commtest.clock import UTC, FrozenClock
from commtest.errors import ChannelError
from commtest.settings import load_settings
from tests.channels.twilio_support import CALLER, PUBLIC, SID, SMS_FROM, TOKEN

ACCOUNT = TwilioAccount("twilio", SID, TOKEN, CALLER, SMS_FROM, base_url=FAKE_BASE)


def ping(channel: str = "voice", *, language: str = "nl", country: str = "BE", body: str = "Dit is een test.",
         alternatives: tuple[AlternativeText, ...] = (), address: str = "+3225550110", deadline_min: int = 5,
         clock: FrozenClock | None = None) -> OutgoingPing:
    now = clock.now() if clock else datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
    return OutgoingPing(ping_id=41, run_id=7, channel=channel, address=address, language=language, subject="",
                        body=body, html=None, ack_url=f"{PUBLIC}/ack/T", ack_code="482913", token="T",
                        deadline_at=now + timedelta(minutes=deadline_min), organisation_code="BE-NCCN",
                        contact_name="Permanence", country=country, alternatives=alternatives)


@pytest.fixture
def fake(clock: FrozenClock) -> FakeTwilio:
    fake = FakeTwilio(clock)
    fake.add_account(SID, TOKEN, {CALLER, SMS_FROM})
    return fake


def voice(fake: FakeTwilio, clock: FrozenClock, **settings: object) -> TwilioVoiceChannel:
    return TwilioVoiceChannel(ACCOUNT, load_settings(public_base_url=PUBLIC, **settings), clock, http_client=fake.client())


def test_a_call_is_created_with_inline_twiml_status_callbacks_and_asynchronous_machine_detection(
        fake: FakeTwilio, clock: FrozenClock) -> None:
    result = voice(fake, clock).send(ping())
    [(what, form)] = fake.creates()
    assert what == "Calls"
    assert result.provider_ref == fake.calls[0].sid and result.provider_ref.startswith("CA")
    assert form["To"] == ["+3225550110"] and form["From"] == [CALLER]
    assert form["StatusCallback"] == [f"{PUBLIC}/hooks/twilio/voice/status?ping=41&provider=twilio"]
    assert form["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]
    assert form["StatusCallbackMethod"] == ["POST"]
    assert form["MachineDetection"] == ["Enable"]
    assert form["AsyncAmd"] == ["true"]  # a string, as Twilio wants it
    assert form["AsyncAmdStatusCallback"] == [f"{PUBLIC}/hooks/twilio/voice/amd?ping=41&provider=twilio"]
    assert form["AsyncAmdStatusCallbackMethod"] == ["POST"]
    assert form["Timeout"] == ["30"]
    assert "Url" not in form
    twiml = form["Twiml"][0]
    assert len(twiml) <= MAX_TWIML
    root = ET.fromstring(twiml.split("?>", 1)[1])
    gathers = root.findall("Gather")
    assert len(gathers) == 2  # silence: the message once more
    assert gathers[0].get("numDigits") == "1" and gathers[0].get("input") == "dtmf"
    assert gathers[0].get("action", "").startswith(f"{PUBLIC}/hooks/twilio/voice/gather?ping=41&provider=twilio&n=0&say=")
    says = [(s.get("language"), s.get("voice"), s.text) for s in gathers[0].findall("Say")]
    assert says[0] == ("nl-NL", "Polly.Lotte", "Dit is een test.")
    assert says[1][2] == "Druk op 1 om te bevestigen dat u deze oproep hebt ontvangen."
    assert root[-1].tag == "Hangup"
    assert root[-2].text == "We hebben geen bevestiging ontvangen. Tot ziens."


def test_the_request_is_authenticated_with_the_account_sid_and_auth_token(fake: FakeTwilio, clock: FrozenClock) -> None:
    seen: list[str] = []
    original = fake._account

    def spy(request):  # type: ignore[no-untyped-def]
        seen.append(request.headers["authorization"])
        return original(request)

    fake._account = spy  # type: ignore[method-assign]
    voice(fake, clock).send(ping())
    assert seen == ["Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()]


def test_the_gather_url_carries_the_message_so_a_repeat_says_exactly_the_same(fake: FakeTwilio, clock: FrozenClock) -> None:
    voice(fake, clock).send(ping(body="Dit is een communicatietest voor het Nationaal Crisiscentrum."))
    action = ET.fromstring(fake.calls[0].param("Twiml").split("?>", 1)[1]).find("Gather").get("action")  # type: ignore[union-attr]
    speech = unpack_speech(action.split("say=", 1)[1])  # type: ignore[union-attr]
    assert speech is not None
    assert (speech.language, speech.code, speech.voice) == ("nl", "nl-NL", "Polly.Lotte")
    assert speech.text == "Dit is een communicatietest voor het Nationaal Crisiscentrum."


def test_a_packed_message_that_is_not_ours_is_refused() -> None:
    assert unpack_speech("") is None
    assert unpack_speech("not-base64-zlib") is None
    assert unpack_speech("A" * 10_000) is None


@pytest.mark.parametrize("language,country,code,voice_name", [
    ("nl", "NL", "nl-NL", "Polly.Lotte"),
    ("nl", "BE", "nl-NL", "Polly.Lotte"),  # Dutch-speaking Belgium hears nl-NL
    ("fr", "BE", "fr-BE", "Polly.Isabelle-Neural"),
    ("fr", "LU", "fr-FR", "Polly.Celine"),
    ("de", "DE-NW", "de-DE", "Polly.Marlene"),
    ("en", "BE", "en-GB", "Polly.Amy"),
])
def test_each_language_is_spoken_with_its_own_voice(language: str, country: str, code: str, voice_name: str) -> None:
    speech = choose_speech(ping(language=language, country=country))
    assert (speech.code, speech.voice) == (code, voice_name)


def test_luxembourgish_falls_back_to_the_contacts_next_language() -> None:
    p = ping(language="lb", country="LU", body="Dëst ass en Test.",
             alternatives=(AlternativeText("fr", "", "Ceci est un test."), AlternativeText("de", "", "Dies ist ein Test.")))
    speech = choose_speech(p)
    assert (speech.language, speech.code, speech.text) == ("fr", "fr-FR", "Ceci est un test.")


def test_the_voices_can_be_overridden_per_language_and_country() -> None:
    speech = choose_speech(ping(language="nl", country="BE"), {"nl-BE": "nl-BE:Polly.Lisa-Neural"})
    assert (speech.code, speech.voice) == ("nl-BE", "Polly.Lisa-Neural")


def test_a_contact_whose_languages_no_voice_speaks_is_a_provider_failure_not_a_wrong_number(
        fake: FakeTwilio, clock: FrozenClock) -> None:
    with pytest.raises(ChannelError) as info:
        voice(fake, clock).send(ping(language="lb", country="LU"))
    assert info.value.code == "no-voice-language" and not info.value.permanent
    assert "COMMTEST_TWILIO_VOICES" in info.value.message
    assert fake.calls == []


def test_a_voice_template_too_long_for_inline_twiml_is_refused_before_calling(fake: FakeTwilio, clock: FrozenClock) -> None:
    with pytest.raises(ChannelError) as info:
        voice(fake, clock).send(ping(body="Dit is een lange test. " * 120))
    assert info.value.code == "twiml-too-long" and "shorten the playbook's voice template" in info.value.message
    assert fake.calls == []


def test_machine_detection_can_be_switched_off(fake: FakeTwilio, clock: FrozenClock) -> None:
    account = TwilioAccount("twilio", SID, TOKEN, CALLER, SMS_FROM, base_url=FAKE_BASE, machine_detection="off")
    TwilioVoiceChannel(account, load_settings(public_base_url=PUBLIC), clock, http_client=fake.client()).send(ping())
    form = fake.creates()[0][1]
    assert "MachineDetection" not in form and "AsyncAmd" not in form


def test_an_sms_carries_the_code_a_status_callback_and_a_validity_period_up_to_the_deadline(
        fake: FakeTwilio, clock: FrozenClock) -> None:
    channel = TwilioSmsChannel(ACCOUNT, load_settings(public_base_url=PUBLIC), clock, http_client=fake.client())
    result = channel.send(ping("sms", body="Communicatietest: antwoord 482913 om te bevestigen.", address="+32470550110",
                               deadline_min=10, clock=clock))
    [(what, form)] = fake.creates()
    assert what == "Messages" and result.provider_ref == fake.messages[0].sid
    assert form["To"] == ["+32470550110"] and form["From"] == [SMS_FROM]
    assert form["Body"] == ["Communicatietest: antwoord 482913 om te bevestigen."]
    assert form["StatusCallback"] == [f"{PUBLIC}/hooks/twilio/sms/status?ping=41&provider=twilio"]
    assert form["ValidityPeriod"] == ["600"]  # a late SMS is dropped, not delivered hours later


def test_an_sms_whose_template_forgot_the_code_gets_it_added_in_its_language(fake: FakeTwilio, clock: FrozenClock) -> None:
    channel = TwilioSmsChannel(ACCOUNT, load_settings(public_base_url=PUBLIC), clock, http_client=fake.client())
    channel.send(ping("sms", language="fr", body="Test de communication.", address="+32470550110"))
    assert fake.creates()[0][1]["Body"] == ["Test de communication.\nRépondez 482913 pour confirmer."]


def test_the_validity_period_is_at_least_a_minute_and_at_most_ten_hours() -> None:
    from channels.sms.twilio import validity_seconds

    now = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
    assert validity_seconds(now + timedelta(seconds=5), now) == 60
    assert validity_seconds(now + timedelta(days=2), now) == 36_000


def test_an_sms_can_come_from_a_messaging_service(fake: FakeTwilio, clock: FrozenClock) -> None:
    service = "MG" + "ab" * 16
    account = TwilioAccount("twilio", SID, TOKEN, CALLER, service, base_url=FAKE_BASE)
    TwilioSmsChannel(account, load_settings(public_base_url=PUBLIC), clock, http_client=fake.client()).send(
        ping("sms", address="+32470550110"))
    form = fake.creates()[0][1]
    assert form["MessagingServiceSid"] == [service] and "From" not in form


def test_a_provider_pointed_at_anything_but_twilios_api_is_simulated() -> None:
    assert TwilioAccount("twilio", SID, TOKEN, CALLER, None, base_url="https://api.twilio.com").simulated is False
    assert TwilioAccount("twilio", SID, TOKEN, CALLER, None, base_url="https://api.dublin.ie1.twilio.com").simulated is False
    assert TwilioAccount("twilio", SID, TOKEN, CALLER, None, base_url="http://127.0.0.1:9000").simulated is True
    assert TwilioAccount("twilio", SID, TOKEN, CALLER, None, base_url="https://api.twilio.com.evil.example").simulated
