"""A world for the Twilio tests: the database, the run engine, the web app and the fake Twilio,
all in this process on one frozen clock. The real SDK talks to the fake through our HTTP
client; the fake calls the web app's webhooks with valid signatures; ``advance`` plays the
far side event by event and ticks the engine."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.base import Channel, OutgoingPing, SendResult
from channels.registry import ChannelSet
from channels.sms.twilio import TwilioSmsChannel
from channels.twilio.config import TwilioAccount, account_for
from channels.twilio.fake import FAKE_BASE, FakeTwilio, in_process_client
from channels.twilio.fake_script import FakeScript
from channels.voice.twilio import TwilioVoiceChannel
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Event, Ping
from commtest.settings import Settings, load_settings
from scheduler.engine import RunEngine
from tests.scheduler.seed import seed_directory, store_playbook
from web.app import create_app

PUBLIC = "https://commtest.example"
SID = "AC" + "0123456789abcdef" * 2
TOKEN = "fictional-auth-token-0001"
BACKUP_SID = "AC" + "fedcba9876543210" * 2
BACKUP_TOKEN = "fictional-auth-token-0002"
CALLER = "+3225550199"
SMS_FROM = "+32470550199"
BACKUP_CALLER = "+3225550198"
BACKUP_SMS = "+32470550198"

# seed_directory's numbers
ONE_VOICE, ONE_SMS = "+3225550100", "+32470555010"
TWO_VOICE, TWO_SMS = "+4925550100", "+49470555010"

PHONE_PLAYBOOK = """
id: phone-test
title: Phone test
owner: XA-COORD
timezone: Europe/Brussels
default_language: en
participants:
  - organisation: XA-ONE
    fields: [crisis-desk]
  - organisation: XB-TWO
    fields: [crisis-desk]
steps:
  - id: voice
    channel: voice
    template: call
    ack_deadline: 5m
    retries: 1
    retry_interval: 2m
    escalate: {step: sms}
  - id: sms
    channel: sms
    template: sms
    ack_deadline: 10m
targets: {voice: 5m, sms: 10m}
templates:
  call:
    en:
      body: "This is a communication test for {{ organisation.name }}. Please press 1 to confirm."
    nl:
      body: "Dit is een communicatietest voor {{ organisation.name }}. Druk op 1 om te bevestigen."
    de:
      body: "Dies ist ein Kommunikationstest für {{ organisation.name }}. Bitte drücken Sie die 1."
  sms:
    en:
      body: "Communication test: reply {{ ack_code }} to confirm."
    nl:
      body: "Communicatietest: antwoord {{ ack_code }} om te bevestigen."
    de:
      body: "Kommunikationstest: Antworten Sie {{ ack_code }} zur Bestätigung."
"""


def twilio_settings(engine: Engine, **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=engine.url.render_as_string(hide_password=False), public_base_url=PUBLIC,
        secret_key="fictional-test-secret", dispatch_workers=2,
        channels={"voice": ["twilio"], "sms": ["twilio"]},
        twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_caller_id=CALLER, twilio_sms_from=SMS_FROM,
        twilio_base_url=FAKE_BASE,
    )
    values.update(extra)
    return load_settings(**values)


@dataclass
class TwilioWorld:
    engine: Engine
    clock: FrozenClock
    settings: Settings
    fake: FakeTwilio
    web: httpx.Client
    runs: RunEngine
    voice: list[Channel] = field(default_factory=list)
    sms: list[Channel] = field(default_factory=list)

    def advance(self, seconds: float, *, step: float = 5.0) -> None:
        """Play the far side and tick the engine every ``step`` seconds (simulated)."""
        left = seconds
        while left > 0:
            chunk = min(step, left)
            self.fake.advance(chunk)
            self.runs.tick()
            left -= chunk

    def run(self, playbook: str = "phone-test", limit_s: float = 3600) -> int:
        run_id = self.runs.create_run(playbook)
        self.runs.start_run(run_id)
        self.runs.tick()
        waited = 0.0
        while not self.runs.is_settled(run_id) and waited < limit_s:
            self.advance(10)
            waited += 10
        assert self.runs.is_settled(run_id), "the run did not finish"
        return run_id

    def pings(self, run_id: int) -> list[Ping]:
        with session_scope(self.engine) as s:
            return list(s.exec(select(Ping).where(Ping.run_id == run_id).order_by(Ping.id)).all())

    def events(self, run_id: int, kind: str | None = None) -> list[Event]:
        with session_scope(self.engine) as s:
            q = select(Event).where(Event.run_id == run_id)
            if kind:
                q = q.where(Event.kind == kind)
            return list(s.exec(q.order_by(Event.id)).all())

    def close(self) -> None:
        self.runs.close()


class QuietEmail:
    kind, provider = "email", "quiet"

    def send(self, ping: OutgoingPing) -> SendResult:
        return SendResult(provider_ref=f"<q-{ping.ping_id}@x.example>")

    def poll_reports(self, now):  # type: ignore[no-untyped-def]
        return []

    def close(self) -> None:
        pass


def twilio_world(engine: Engine, clock: FrozenClock, script: FakeScript | None = None, *,
                 settings: Settings | None = None, playbook: str = PHONE_PLAYBOOK, backup: bool = False,
                 seed: bool = True) -> TwilioWorld:
    settings = settings or twilio_settings(engine)
    if seed:
        seed_directory(engine)
        store_playbook(engine, playbook, "phone-test")
    app = create_app(settings, engine, clock)
    web = in_process_client(app, PUBLIC)
    fake = FakeTwilio(clock, script=script, callbacks=web)
    fake.add_account(SID, TOKEN, {CALLER, SMS_FROM}, sms_url=f"{PUBLIC}/hooks/twilio/sms/inbound")
    accounts = [account_for("twilio", settings)]
    if backup:
        fake.add_account(BACKUP_SID, BACKUP_TOKEN, {BACKUP_CALLER, BACKUP_SMS},
                         sms_url=f"{PUBLIC}/hooks/twilio/sms/inbound?provider=twilio-backup")
        accounts.append(account_for("twilio-backup", settings))
    voice = [TwilioVoiceChannel(a, settings, clock, http_client=fake.client()) for a in accounts]
    sms = [TwilioSmsChannel(a, settings, clock, http_client=fake.client()) for a in accounts]
    overrides: dict[str, Any] = {"voice": voice, "sms": sms, "email": QuietEmail()}
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, overrides), actor="test")
    return TwilioWorld(engine, clock, settings, fake, web, runs, voice, sms)


def backup_settings(engine: Engine, monkeypatch: Any, **extra: Any) -> Settings:
    """Two accounts in failover order: ``twilio`` and the named configuration ``twilio-backup``."""
    monkeypatch.setenv("COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN", BACKUP_TOKEN)
    configs = {"twilio-backup": {"type": "twilio", "account_sid": BACKUP_SID, "caller_id": BACKUP_CALLER,
                                 "sms_from": BACKUP_SMS, "base_url": FAKE_BASE}}
    return twilio_settings(engine, channels={"voice": ["twilio", "twilio-backup"], "sms": ["twilio", "twilio-backup"]},
                           provider_configs=configs, **extra)


def account(settings: Settings, name: str = "twilio") -> TwilioAccount:
    return account_for(name, settings)
