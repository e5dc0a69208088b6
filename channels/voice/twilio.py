"""The Twilio provider of the voice channel (``voice.twilio``).

``send`` places one call with inline TwiML (``channels.voice.twiml``): the message in the
contact's language, "press 1 to confirm", silence repeats once. Status callbacks (initiated,
ringing, answered, completed) and asynchronous answering-machine detection come back to the
web app's ``/hooks/twilio/voice/...`` webhooks, which carry the ping id; the Call SID is the
ping's ``provider_ref``.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from channels.base import ChannelReport, OutgoingPing, SendResult
from channels.twilio.config import TwilioAccount, account_for
from channels.twilio.connection import SentRecord, TwilioConnection
from channels.twilio.pacing import Pacer
from channels.twilio.signature import VOICE_AMD, VOICE_GATHER, VOICE_STATUS, hook_url
from channels.voice.speech import choose_speech
from channels.voice.twiml import MAX_TWIML, call_twiml, pack_speech
from commtest.clock import Clock
from commtest.errors import ChannelError, ConfigError
from commtest.settings import ENV_PREFIX, Settings

__all__ = ["STATUS_EVENTS", "TwilioVoiceChannel"]

STATUS_EVENTS = ["initiated", "ringing", "answered", "completed"]


class TwilioVoiceChannel:
    kind = "voice"

    def __init__(self, account: TwilioAccount, settings: Settings, clock: Clock, *,
                 http_client: httpx.Client | None = None, pacer: Pacer | None = None) -> None:
        self.require(account)
        self.provider = account.provider
        self.simulated = account.simulated
        self.account = account
        self.settings = settings
        self.clock = clock
        self.connection = TwilioConnection(account, clock, self.kind, http_client=http_client, pacer=pacer)

    @staticmethod
    def require(account: TwilioAccount) -> None:
        if not account.caller_id:
            where = (f"{ENV_PREFIX}TWILIO_CALLER_ID" if account.provider == "twilio"
                     else f"{ENV_PREFIX}PROVIDER_CONFIGS: {account.provider}.caller_id")
            raise ConfigError(f"{where}: missing; the calls need a caller ID (a Twilio number of the account, "
                              "or a verified caller ID), e.g. +3225550100")

    @classmethod
    def check_config(cls, kind: str, name: str, settings: Settings) -> None:
        """At start (``check-config``, the daemon): the account and the caller ID are usable."""
        cls.require(account_for(name, settings))

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> TwilioVoiceChannel:
        return cls.create_named(kind, "twilio", {}, settings, clock)

    @classmethod
    def create_named(cls, kind: str, name: str, config: dict[str, Any], settings: Settings,
                     clock: Clock) -> TwilioVoiceChannel:
        if kind != "voice":
            raise ConfigError(f"channels.{kind}: the Twilio voice provider places calls; for SMS it is sms.twilio")
        return cls(account_for(name, settings), settings, clock)

    # -- Channel -----------------------------------------------------------------
    def send(self, ping: OutgoingPing) -> SendResult:
        speech = choose_speech(ping, self.account.voices)
        base, name = self.settings.public_base_url, self.provider
        gather = hook_url(base, VOICE_GATHER, ping=ping.ping_id, provider=name, n=0, say=pack_speech(speech))
        twiml = call_twiml(speech, gather)
        if len(twiml) > MAX_TWIML:
            raise ChannelError(f"the call's TwiML is {len(twiml)} characters; Twilio takes at most {MAX_TWIML}: "
                               "shorten the playbook's voice template", permanent=False, code="twiml-too-long")
        detection: dict[str, Any] = {}
        if self.account.machine_detection != "off":
            detection = dict(machine_detection=self.account.machine_detection, async_amd="true",  # a string
                             async_amd_status_callback=hook_url(base, VOICE_AMD, ping=ping.ping_id, provider=name),
                             async_amd_status_callback_method="POST")
        call = self.connection.create(ping.address, lambda c: c.calls.create(
            to=ping.address, from_=self.account.caller_id, twiml=twiml,
            status_callback=hook_url(base, VOICE_STATUS, ping=ping.ping_id, provider=name),
            status_callback_event=STATUS_EVENTS, status_callback_method="POST",
            timeout=self.account.ring_seconds, **detection,
        ))
        return SendResult(provider_ref=str(call.sid))

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        return []  # everything comes back through the webhooks

    def find_sent(self, address: str, since: datetime, until: datetime, ack_code: str | None) -> SentRecord | None:
        """The call Twilio placed to ``address`` between ``since`` and ``until``, when exactly
        one matches (recovery after a crash: ``scheduler.reconcile``)."""
        found = [r for r in self.connection.calls_to(address, since - timedelta(minutes=1))
                 if since - timedelta(seconds=5) <= r.created_at <= until]
        return found[0] if len(found) == 1 else None

    def close(self) -> None:
        self.connection.close()
