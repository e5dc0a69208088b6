"""The Twilio provider of the SMS channel (``sms.twilio``).

``send`` sends one message with the ping's reply code and a ``ValidityPeriod`` equal to the
time left until the acknowledgement deadline (at least a minute, at most Twilio's 10 hours),
so an SMS stuck in a carrier queue is dropped instead of arriving hours after the test. The
delivery status comes back to ``/hooks/twilio/sms/status``; the officer's reply to the number's
inbound webhook ``/hooks/twilio/sms/inbound`` (set it on the number in the Twilio console).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx

from channels.base import ChannelReport, OutgoingPing, SendResult
from channels.sms.replies import append_code
from channels.twilio.config import TwilioAccount, account_for
from channels.twilio.connection import SentRecord, TwilioConnection
from channels.twilio.signature import SMS_STATUS, hook_url
from commtest.clock import Clock
from commtest.errors import ConfigError
from commtest.settings import ENV_PREFIX, Settings

__all__ = ["MAX_VALIDITY_S", "MIN_VALIDITY_S", "TwilioSmsChannel", "validity_seconds"]

MIN_VALIDITY_S = 60
MAX_VALIDITY_S = 36_000  # Twilio's upper bound (10 hours)


def validity_seconds(deadline_at: datetime, now: datetime) -> int:
    left = int((deadline_at - now).total_seconds())
    return max(MIN_VALIDITY_S, min(MAX_VALIDITY_S, left))


class TwilioSmsChannel:
    kind = "sms"

    def __init__(self, account: TwilioAccount, settings: Settings, clock: Clock, *,
                 http_client: httpx.Client | None = None) -> None:
        self.require(account)
        self.provider = account.provider
        self.simulated = account.simulated
        self.account = account
        self.settings = settings
        self.clock = clock
        self.connection = TwilioConnection(account, clock, self.kind, http_client=http_client)

    @staticmethod
    def require(account: TwilioAccount) -> None:
        if not account.sms_from:
            where = (f"{ENV_PREFIX}TWILIO_SMS_FROM" if account.provider == "twilio"
                     else f"{ENV_PREFIX}PROVIDER_CONFIGS: {account.provider}.sms_from")
            raise ConfigError(f"{where}: missing; the SMS need a sender (an SMS-capable Twilio number, e.g. "
                              "+32470555099, or a Messaging Service SID MG...)")

    @classmethod
    def check_config(cls, kind: str, name: str, settings: Settings) -> None:
        """At start (``check-config``, the daemon): the account and the SMS sender are usable."""
        cls.require(account_for(name, settings))

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> TwilioSmsChannel:
        return cls.create_named(kind, "twilio", {}, settings, clock)

    @classmethod
    def create_named(cls, kind: str, name: str, config: dict[str, Any], settings: Settings,
                     clock: Clock) -> TwilioSmsChannel:
        if kind != "sms":
            raise ConfigError(f"channels.{kind}: the Twilio SMS provider sends SMS; for calls it is voice.twilio")
        return cls(account_for(name, settings), settings, clock)

    # -- Channel -----------------------------------------------------------------
    def send(self, ping: OutgoingPing) -> SendResult:
        body = append_code(ping.body, ping.ack_code, ping.language)
        sender = self.account.sms_from or ""
        origin: dict[str, str] = {"messaging_service_sid": sender} if sender.startswith("MG") else {"from_": sender}
        status = hook_url(self.settings.public_base_url, SMS_STATUS, ping=ping.ping_id, provider=self.provider)

        def make(client: Any) -> Any:
            # Measured at the moment of sending, after the pacer's wait.
            validity = validity_seconds(ping.deadline_at, self.clock.now())
            return client.messages.create(to=ping.address, body=body, status_callback=status,
                                          validity_period=validity, **origin)

        message = self.connection.create(ping.address, make)
        return SendResult(provider_ref=str(message.sid))

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        return []  # delivery and replies come back through the webhooks

    def find_sent(self, address: str, since: datetime, until: datetime, ack_code: str | None) -> SentRecord | None:
        """The message Twilio has to ``address`` from that moment carrying this ping's code."""
        found = [r for r in self.connection.messages_to(address, since - timedelta(minutes=1))
                 if since - timedelta(seconds=5) <= r.created_at <= until and (not ack_code or ack_code in r.body)]
        return found[0] if len(found) == 1 else None

    def close(self) -> None:
        self.connection.close()
