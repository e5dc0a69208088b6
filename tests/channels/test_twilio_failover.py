"""Several Twilio accounts in failover order, configured as a real deployment would be: the
named configuration ``twilio-backup`` with its auth token from the environment only."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from channels.registry import ChannelSet, check_channel_providers, create_channel, is_simulated
from channels.twilio.config import account_for
from channels.twilio.fake import FakeTwilio, in_process_client
from channels.twilio.fake_script import CallScript, FakeScript
from commtest.clock import FrozenClock
from commtest.errors import ConfigError
from commtest.settings import load_settings
from scheduler.engine import RunEngine
from tests.channels.twilio_support import (
    BACKUP_CALLER,
    BACKUP_SID,
    BACKUP_SMS,
    BACKUP_TOKEN,
    CALLER,
    ONE_VOICE,
    PHONE_PLAYBOOK,
    PUBLIC,
    SID,
    SMS_FROM,
    TOKEN,
    TWO_VOICE,
    QuietEmail,
    TwilioWorld,
)
from tests.scheduler.seed import seed_directory, store_playbook
from web.app import create_app


@pytest.fixture
def served(clock: FrozenClock) -> Iterator[tuple[FakeTwilio, str]]:
    """The fake on loopback (the registry's own HTTP clients reach it), played on the frozen clock."""
    fake = FakeTwilio(clock, script=FakeScript(default_call=CallScript(keys=(("1", 5),))))
    fake.add_account(SID, TOKEN, {CALLER, SMS_FROM}, sms_url=f"{PUBLIC}/hooks/twilio/sms/inbound")
    fake.add_account(BACKUP_SID, BACKUP_TOKEN, {BACKUP_CALLER, BACKUP_SMS})
    base = fake.serve(play=False)
    yield fake, base
    fake.stop()


def two_accounts(engine: Engine, base: str, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> Any:
    monkeypatch.setenv("COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN", BACKUP_TOKEN)
    return load_settings(
        database_url=engine.url.render_as_string(hide_password=False), public_base_url=PUBLIC, dispatch_workers=2,
        channels={"voice": ["twilio", "twilio-backup"], "sms": ["twilio", "twilio-backup"]},
        twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_caller_id=CALLER, twilio_sms_from=SMS_FROM,
        twilio_base_url=base,
        provider_configs={"twilio-backup": {"type": "twilio", "account_sid": BACKUP_SID, "caller_id": BACKUP_CALLER,
                                            "sms_from": BACKUP_SMS, "base_url": base}},
        **extra,
    )


def world(engine: Engine, clock: FrozenClock, fake: FakeTwilio, settings: Any) -> TwilioWorld:
    seed_directory(engine)
    store_playbook(engine, PHONE_PLAYBOOK, "phone-test")
    web = in_process_client(create_app(settings, engine, clock), PUBLIC)
    fake.player.callbacks = web
    channels = ChannelSet(settings, clock, {"email": QuietEmail()})  # voice and sms from the settings
    return TwilioWorld(engine, clock, settings, fake, web, RunEngine(engine, settings, clock, channels, actor="test"))


def test_when_the_first_account_fails_the_backup_carries_the_call_and_says_so(
        engine: Engine, clock: FrozenClock, served: tuple[FakeTwilio, str], monkeypatch: pytest.MonkeyPatch) -> None:
    fake, base = served
    fake.fail_account(SID, 503, 20503)
    w = world(engine, clock, fake, two_accounts(engine, base, monkeypatch))
    run_id = w.run()
    voice = [p for p in w.pings(run_id) if p.channel == "voice"]
    assert [(p.provider, p.outcome) for p in voice] == [("twilio-backup", "acked")] * 2
    assert {c.account_sid for c in fake.calls} == {BACKUP_SID}
    assert {c.from_ for c in fake.calls} == {BACKUP_CALLER}
    sent = [e for e in w.events(run_id, "ping.sent") if e.channel == "voice"]
    assert [e.data["provider"] for e in sent] == ["twilio-backup"] * 2  # what the report prints
    # The primary was asked first, once per attempt, and refused: never a second call.
    primary_creates = [f for what, f in fake.creates() if what == "Calls"]
    assert len(primary_creates) == 4 and len(fake.calls) == 2
    w.close()


def test_a_wrong_number_does_not_fail_over(engine: Engine, clock: FrozenClock, served: tuple[FakeTwilio, str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    fake, base = served
    fake.script = FakeScript(unknown_numbers=frozenset({ONE_VOICE}), default_call=CallScript(keys=(("1", 5),)))
    w = world(engine, clock, fake, two_accounts(engine, base, monkeypatch))
    run_id = w.run()
    one = [p for p in w.pings(run_id) if p.address == ONE_VOICE]
    assert [(p.provider, p.outcome) for p in one] == [("twilio", "invalid_endpoint")]
    assert [f["To"] for what, f in fake.creates() if what == "Calls"].count([ONE_VOICE]) == 1
    assert [c.to for c in fake.calls] == [TWO_VOICE]
    w.close()


def test_the_backups_webhooks_are_checked_with_the_backups_own_token(
        engine: Engine, clock: FrozenClock, served: tuple[FakeTwilio, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from urllib.parse import urlencode

    from channels.twilio.signature import SIGNATURE_HEADER, sign

    fake, base = served
    fake.fail_account(SID, 503, 20503)
    fake.script = FakeScript(default_call=CallScript("no-answer", ring_after=1000))
    w = world(engine, clock, fake, two_accounts(engine, base, monkeypatch))
    run_id = w.runs.create_run("phone-test")
    w.runs.start_run(run_id)
    w.runs.tick()
    ping = next(p for p in w.pings(run_id) if p.channel == "voice")
    url = f"{PUBLIC}/hooks/twilio/voice/status?ping={ping.id}&provider=twilio-backup"
    params = {"AccountSid": BACKUP_SID, "CallSid": ping.provider_ref or "", "CallStatus": "busy"}

    def post(token: str) -> int:
        return w.web.post(url, content=urlencode(params), headers={
            SIGNATURE_HEADER: sign(token, url, params), "Content-Type": "application/x-www-form-urlencoded"}).status_code

    assert post(TOKEN) == 403  # the primary's token does not sign the backup's webhooks
    assert next(p for p in w.pings(run_id) if p.id == ping.id).state == "sent"
    assert post(BACKUP_TOKEN) == 200
    assert next(p for p in w.pings(run_id) if p.id == ping.id).outcome == "busy"
    w.close()


def test_a_secret_written_into_a_named_configuration_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(provider_configs={"twilio-backup": {"type": "twilio", "account_sid": BACKUP_SID,
                                                          "auth_token": "oops"}})
    message = str(info.value)
    assert "twilio-backup.auth_token" in message and "COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN" in message
    assert "oops" not in message


def test_a_named_configuration_without_its_token_in_the_environment_names_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN", raising=False)
    settings = load_settings(channels={"voice": ["twilio-backup"]},
                             provider_configs={"twilio-backup": {"type": "twilio", "account_sid": BACKUP_SID,
                                                                 "caller_id": BACKUP_CALLER}})
    with pytest.raises(ConfigError) as info:
        check_channel_providers(settings)
    assert "COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN: missing" in str(info.value)


def test_the_token_of_a_named_configuration_can_come_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    secret = tmp_path / "token"
    secret.write_text(BACKUP_TOKEN + "\n")
    monkeypatch.setenv("COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN_FILE", str(secret))
    settings = load_settings(provider_configs={"twilio-backup": {"type": "twilio", "account_sid": BACKUP_SID}})
    assert account_for("twilio-backup", settings).auth_token == BACKUP_TOKEN


def test_an_unknown_key_of_a_named_configuration_is_refused_with_the_keys_that_exist(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN", BACKUP_TOKEN)
    settings = load_settings(provider_configs={"twilio-backup": {"type": "twilio", "account_sid": BACKUP_SID,
                                                                 "callerid": "+3225550198"}})
    with pytest.raises(ConfigError) as info:
        account_for("twilio-backup", settings)
    assert "twilio-backup.callerid: unknown key; expected one of: type, account_sid, caller_id" in str(info.value)


def test_check_config_names_a_missing_caller_id_and_a_malformed_account_sid() -> None:
    settings = load_settings(channels={"voice": "twilio"}, twilio_account_sid="AC123", twilio_auth_token=TOKEN)
    with pytest.raises(ConfigError) as info:
        check_channel_providers(settings)
    assert "COMMTEST_TWILIO_ACCOUNT_SID: expected AC followed by 32 hexadecimal characters" in str(info.value)
    settings = load_settings(channels={"voice": "twilio"}, twilio_account_sid=SID, twilio_auth_token=TOKEN)
    with pytest.raises(ConfigError) as info:
        check_channel_providers(settings)
    assert "COMMTEST_TWILIO_CALLER_ID: missing" in str(info.value)


def test_a_provider_pointed_at_a_fake_is_refused_without_the_sandbox_setting(monkeypatch: pytest.MonkeyPatch,
                                                                             clock: FrozenClock) -> None:
    monkeypatch.delenv("COMMTEST_SANDBOX")
    settings = load_settings(channels={"voice": "twilio"}, twilio_account_sid=SID, twilio_auth_token=TOKEN,
                             twilio_caller_id=CALLER, twilio_base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError) as info:
        create_channel("voice", settings, clock)
    assert "simulated" in str(info.value) and "COMMTEST_SANDBOX=true" in str(info.value)
    real = load_settings(channels={"voice": "twilio"}, twilio_account_sid=SID, twilio_auth_token=TOKEN,
                         twilio_caller_id=CALLER)
    channel = create_channel("voice", real, clock)
    assert channel.provider == "twilio" and is_simulated(channel) is False
    channel.close()


def test_check_config_accepts_a_complete_twilio_setup(run_cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {"COMMTEST_CHANNELS": '{"voice": "twilio", "sms": "twilio"}', "COMMTEST_TWILIO_ACCOUNT_SID": SID,
                       "COMMTEST_TWILIO_AUTH_TOKEN": TOKEN, "COMMTEST_TWILIO_CALLER_ID": CALLER,
                       "COMMTEST_TWILIO_SMS_FROM": SMS_FROM}.items():
        monkeypatch.setenv(key, value)
    result = run_cli("check-config")
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    assert "twilio_auth_token" in result.output and "********" in result.output


def test_a_voice_override_that_is_not_language_code_and_voice_is_refused_at_start() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(twilio_voices={"nl-BE": "Polly.Lisa"})
    assert "COMMTEST_TWILIO_VOICES" in str(info.value) and "expected 'language-code:voice'" in str(info.value)
