"""The demo's phones: the fake Twilio on a free loopback port, playing the fictional duty
officers of the sample directory, and the settings and channels that reach it.

The real Twilio providers (``voice.twilio``, ``sms.twilio``) and the real webhooks are used;
only the far side is simulated, so every call and SMS of the demo is marked simulated.

* Belgium presses 1 after the message;
* the Netherlands lets the answering machine take every call, then confirms by SMS;
* Luxembourg is busy the first time and answers the retry (it hears French: no voice speaks
  Luxembourgish, and French comes first for this desk);
* North Rhine-Westphalia does not pick up, then replies to the SMS with a wrong code first.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from channels.base import Channel
from channels.sms.twilio import TwilioSmsChannel
from channels.twilio.config import account_for
from channels.twilio.fake import FakeTwilio
from channels.twilio.fake_script import FakeScript
from channels.voice.twilio import TwilioVoiceChannel
from commtest.clock import Clock
from commtest.masking import mask_address
from commtest.settings import Settings

__all__ = ["DEMO_OFFICERS", "TwilioDemo"]

# Fictional account: never a real SID or token.
DEMO_SID = "AC" + "de" * 16
DEMO_TOKEN = "demo-auth-token-not-a-secret"
CALLER = "+3225550199"
SMS_FROM = "+32470550199"

DEMO_OFFICERS: dict[str, Any] = {
    "calls": {
        "+3225550110": [{"answer": "person", "answer_after": 12, "keys": [["1", 9]]}],
        "+31705550110": [{"answer": "machine", "answer_after": 10}],
        "+35224785510": [{"answer": "busy"}, {"answer": "person", "answer_after": 15, "keys": [["1", 12]]}],
        "+492115550110": [{"answer": "no-answer"}],
    },
    "messages": {
        "+31655500110": [{"replies": [["Ontvangen, code {code}", 70]]}],
        "+4915155500110": [{"replies": [["123456", 40], ["{code}", 100]]}],
    },
}


@dataclass
class TwilioDemo:
    fake: FakeTwilio
    base_url: str
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, clock: Clock, public_base_url: str) -> TwilioDemo:
        fake = FakeTwilio(clock, script=FakeScript.from_data(DEMO_OFFICERS, "demo officers"),
                          callbacks=httpx.Client(timeout=10))
        fake.add_account(DEMO_SID, DEMO_TOKEN, {CALLER, SMS_FROM},
                         sms_url=f"{public_base_url.rstrip('/')}/hooks/twilio/sms/inbound")
        base = fake.serve()
        settings = {"twilio_account_sid": DEMO_SID, "twilio_auth_token": DEMO_TOKEN, "twilio_caller_id": CALLER,
                    "twilio_sms_from": SMS_FROM, "twilio_base_url": base}
        return cls(fake, base, settings)

    @property
    def channels(self) -> dict[str, str]:
        return {"voice": "twilio", "sms": "twilio"}

    def providers(self, settings: Settings, clock: Clock) -> dict[str, Channel]:
        account = account_for("twilio", settings)
        return {"voice": TwilioVoiceChannel(account, settings, clock), "sms": TwilioSmsChannel(account, settings, clock)}

    def officers_log(self) -> list[str]:
        """What the phone officers did, one line each, numbers masked."""
        lines = []
        for call in self.fake.calls:
            who = mask_address(call.to)
            if "1" in call.digits:
                what = "picked up and pressed 1"
            elif (call.answered_by or "").startswith("machine"):
                what = "the answering machine took the call"
            else:
                what = {"busy": "the line was busy", "no-answer": "nobody picked up"}.get(call.status, call.status)
            language = call.spoken[0][0] if call.spoken else ""
            lines.append(f"{who}: call: {what}" + (f" (heard {language})" if language else ""))
        for message in self.fake.player.inbound:
            lines.append(f"{mask_address(message.from_)}: SMS reply {message.body!r}")
        for message in self.fake.player.sent_messages:
            lines.append(f"{mask_address(message.to)}: our answer by SMS: {message.body!r}")
        return lines

    def stop(self) -> None:
        self.fake.stop()
