"""Calls and SMS start no faster than the account's rate, on the injected clock."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta

from channels.sms.twilio import TwilioSmsChannel
from channels.twilio.config import TwilioAccount
from channels.twilio.fake import FAKE_BASE, FakeTwilio
from channels.twilio.pacing import Pacer, pacer_for
from channels.voice.twilio import TwilioVoiceChannel
from commtest.clock import UTC, FrozenClock, SystemClock
from commtest.settings import load_settings
from tests.channels.test_twilio_requests import ping
from tests.channels.twilio_support import CALLER, PUBLIC, SID, SMS_FROM, TOKEN


def spacings(times: list[datetime]) -> list[float]:
    return [(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)]


def test_twenty_calls_at_two_per_second_are_spaced_half_a_second_apart(clock: FrozenClock) -> None:
    fake = FakeTwilio(clock)
    fake.add_account(SID, TOKEN, {CALLER, SMS_FROM})
    account = TwilioAccount("twilio", SID, TOKEN, CALLER, SMS_FROM, base_url=FAKE_BASE, rate_per_second=2.0)
    channel = TwilioVoiceChannel(account, load_settings(public_base_url=PUBLIC), clock, http_client=fake.client())
    start = clock.now()
    for i in range(20):
        channel.send(ping(address=f"+32255501{i:02d}"))
    created = [c.created_at for c in fake.calls]
    assert len(created) == 20
    assert spacings(created) == [0.5] * 19
    assert created[0] == start  # the first goes at once
    assert clock.now() - start == timedelta(seconds=9.5)


def test_calls_and_sms_of_one_account_are_paced_separately(clock: FrozenClock) -> None:
    fake = FakeTwilio(clock)
    fake.add_account(SID, TOKEN, {CALLER, SMS_FROM})
    account = TwilioAccount("twilio", SID, TOKEN, CALLER, SMS_FROM, base_url=FAKE_BASE, rate_per_second=1.0)
    settings = load_settings(public_base_url=PUBLIC)
    voice = TwilioVoiceChannel(account, settings, clock, http_client=fake.client())
    sms = TwilioSmsChannel(account, settings, clock, http_client=fake.client())
    voice.send(ping())
    sms.send(ping("sms", address="+32470550110"))
    assert fake.calls[0].created_at == fake.messages[0].created_at  # no wait across kinds


def test_two_channel_instances_of_one_account_share_its_pace(clock: FrozenClock) -> None:
    assert pacer_for("AC-x", "voice", 1.0, clock) is pacer_for("AC-x", "voice", 1.0, clock)
    assert pacer_for("AC-x", "voice", 1.0, clock) is not pacer_for("AC-x", "voice", 1.0, FrozenClock(clock.now()))
    assert pacer_for("AC-y", "voice", 1.0, clock) is not pacer_for("AC-x", "voice", 1.0, clock)


def test_threads_sharing_a_pacer_each_get_their_own_slot() -> None:
    pacer = Pacer(50.0, SystemClock())
    slots: list[datetime] = []
    lock = threading.Lock()

    def take() -> None:
        slot = pacer.wait()
        with lock:
            slots.append(slot)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(slots)
    assert all(abs(gap - 0.02) < 1e-6 for gap in spacings(ordered))
    assert ordered[0] <= datetime.now(UTC)
