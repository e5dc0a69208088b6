"""Twilio's errors as the engine sees them: a wrong number is the endpoint's fault, a refusal
of ours (429, 5xx, credentials) a provider failure, and a create whose answer never came
is ambiguous: never resent."""
from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.registry import ChannelSet
from channels.sms.twilio import TwilioSmsChannel
from channels.twilio.config import TwilioAccount
from channels.twilio.fake import FAKE_BASE, FakeTwilio
from channels.twilio.fake_script import CallScript, FakeScript, SmsScript
from channels.voice.twilio import TwilioVoiceChannel
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.errors import ChannelError
from commtest.models import Endpoint, EndpointStatus, Ping
from commtest.settings import load_settings
from scheduler.engine import RunEngine
from tests.channels.test_twilio_requests import ACCOUNT, ping
from tests.channels.twilio_support import (
    CALLER,
    ONE_VOICE,
    PUBLIC,
    SID,
    SMS_FROM,
    TOKEN,
    PHONE_PLAYBOOK,
    QuietEmail,
    backup_settings,
    twilio_world,
)
from tests.scheduler.seed import seed_directory, store_playbook


def fake_with(clock: FrozenClock, script: FakeScript) -> FakeTwilio:
    fake = FakeTwilio(clock, script=script)
    fake.add_account(SID, TOKEN, {CALLER, SMS_FROM})
    return fake


def send_call(fake: FakeTwilio, clock: FrozenClock, address: str = "+3225550110",
              account: TwilioAccount = ACCOUNT) -> ChannelError:
    channel = TwilioVoiceChannel(account, load_settings(public_base_url=PUBLIC), clock, http_client=fake.client())
    with pytest.raises(ChannelError) as info:
        channel.send(ping(address=address))
    return info.value


@pytest.mark.parametrize("code", [21211, 21214, 21217, 21614])
def test_an_invalid_number_marks_the_endpoint_invalid(clock: FrozenClock, code: int) -> None:
    fake = fake_with(clock, FakeScript(calls={"+3225550110": [CallScript(api_error=(400, code))]}))
    error = send_call(fake, clock)
    assert error.permanent and error.code == "invalid-number" and not error.ambiguous
    assert f"error {code}" in error.message and "+3225550110" not in error.message  # masked


def test_a_number_that_unsubscribed_is_blocked(clock: FrozenClock) -> None:
    fake = fake_with(clock, FakeScript(messages={"+32470550110": [SmsScript(api_error=(400, 21610))]}))
    channel = TwilioSmsChannel(ACCOUNT, load_settings(public_base_url=PUBLIC), clock, http_client=fake.client())
    with pytest.raises(ChannelError) as info:
        channel.send(ping("sms", address="+32470550110"))
    assert info.value.permanent and info.value.code == "blocked" and "STOP" in info.value.message


def test_a_landline_refused_for_sms_is_an_invalid_number(clock: FrozenClock) -> None:
    fake = fake_with(clock, FakeScript(landlines=frozenset({"+3225550110"})))
    channel = TwilioSmsChannel(ACCOUNT, load_settings(public_base_url=PUBLIC), clock, http_client=fake.client())
    with pytest.raises(ChannelError) as info:
        channel.send(ping("sms", address="+3225550110"))
    assert info.value.permanent and info.value.code == "invalid-number" and "landline" in info.value.message


@pytest.mark.parametrize("status,code,ours", [(429, 20429, "twilio-429"), (503, 20503, "twilio-503"),
                                               (500, 20500, "twilio-500")])
def test_rate_limits_and_server_errors_are_provider_failures_that_may_fail_over(
        clock: FrozenClock, status: int, code: int, ours: str) -> None:
    fake = fake_with(clock, FakeScript(calls={"+3225550110": [CallScript(api_error=(status, code))]}))
    error = send_call(fake, clock)
    assert not error.permanent and not error.ambiguous and error.code == ours


def test_wrong_credentials_are_our_side_and_say_what_to_check(clock: FrozenClock) -> None:
    fake = fake_with(clock, FakeScript())
    wrong = TwilioAccount("twilio", SID, "not-the-token", CALLER, SMS_FROM, base_url=FAKE_BASE)
    error = send_call(fake, clock, account=wrong)
    assert error.code == "twilio-auth" and not error.permanent and "auth token" in error.message


def test_a_caller_id_that_is_not_the_accounts_is_our_side(clock: FrozenClock) -> None:
    fake = fake_with(clock, FakeScript())
    other = TwilioAccount("twilio", SID, TOKEN, "+3225550177", SMS_FROM, base_url=FAKE_BASE)
    error = send_call(fake, clock, account=other)
    assert error.code == "twilio-21210" and not error.permanent and "caller ID" in error.message


def _mock(clock: FrozenClock, failure: Exception, seen: list[httpx.Request]) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        raise failure
    return httpx.Client(transport=httpx.MockTransport(handler))


def test_a_timeout_after_the_request_went_out_is_ambiguous(clock: FrozenClock) -> None:
    seen: list[httpx.Request] = []
    client = _mock(clock, httpx.ReadTimeout("timed out"), seen)
    channel = TwilioVoiceChannel(ACCOUNT, load_settings(public_base_url=PUBLIC), clock, http_client=client)
    with pytest.raises(ChannelError) as info:
        channel.send(ping())
    assert info.value.ambiguous and info.value.code == "twilio-timeout" and "not resent" in info.value.message
    assert len(seen) == 1  # the SDK never tried again


def test_a_refused_connection_is_a_plain_provider_failure(clock: FrozenClock) -> None:
    seen: list[httpx.Request] = []
    client = _mock(clock, httpx.ConnectError("connection refused"), seen)
    channel = TwilioVoiceChannel(ACCOUNT, load_settings(public_base_url=PUBLIC), clock, http_client=client)
    with pytest.raises(ChannelError) as info:
        channel.send(ping())
    assert not info.value.ambiguous and not info.value.permanent and info.value.code == "twilio-unreachable"
    assert len(seen) == 1


def test_no_duplicate_call_when_the_create_timed_out_even_with_a_backup_and_retries(
        engine: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = backup_settings(engine, monkeypatch)
    seed_directory(engine)
    store_playbook(engine, PHONE_PLAYBOOK, "phone-test")
    seen: list[httpx.Request] = []
    primary = TwilioVoiceChannel(ACCOUNT, settings, clock, http_client=_mock(clock, httpx.ReadTimeout("t"), seen))
    backup_seen: list[httpx.Request] = []
    backup = TwilioVoiceChannel(TwilioAccount("twilio-backup", SID, TOKEN, CALLER, SMS_FROM, base_url=FAKE_BASE),
                                settings, clock, http_client=_mock(clock, httpx.ReadTimeout("t"), backup_seen))
    quiet_sms = TwilioSmsChannel(ACCOUNT, settings, clock, http_client=_mock(clock, httpx.ConnectError("x"), []))
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, {"voice": [primary, backup],
                                                                           "sms": quiet_sms, "email": QuietEmail()}))
    run_id = runs.create_run("phone-test")
    runs.start_run(run_id)
    for _ in range(60):
        runs.tick()
        clock.advance(30)
    runs.close()
    with_calls = [r for r in seen if r.url.path.endswith("/Calls.json")]
    assert len(with_calls) == 2  # one per contact point: each created once, never again
    assert backup_seen == []  # no failover after an ambiguous timeout
    with session_scope(engine) as s:
        voice_pings = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "voice")).all()
    assert [(p.attempt, p.state, p.outcome) for p in voice_pings] == [(1, "unknown", "unknown")] * 2


def test_an_invalid_number_is_marked_invalid_in_the_directory_and_not_retried(engine: Engine, clock: FrozenClock) -> None:
    w = twilio_world(engine, clock, FakeScript(unknown_numbers=frozenset({ONE_VOICE})))
    for channel in (*w.voice, *w.sms):
        channel.simulated = False  # type: ignore[attr-defined]  # stands in for the real API: evidence
    run_id = w.run()
    one = [p for p in w.pings(run_id) if p.address == ONE_VOICE]
    assert [(p.state, p.outcome) for p in one] == [("failed", "invalid_endpoint")]
    with session_scope(engine) as s:
        endpoint = s.get(Endpoint, one[0].endpoint_id)
        assert endpoint is not None and endpoint.status == EndpointStatus.invalid.value
    assert [c.to for c in w.fake.calls].count(ONE_VOICE) == 0  # refused at create: no call rang
    w.close()
