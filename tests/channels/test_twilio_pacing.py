"""Calls and SMS start no faster than the account's rate, on the injected clock."""
from __future__ import annotations

import threading
import time
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


def test_threads_sharing_a_pacer_on_the_system_clock_are_released_at_least_one_interval_apart() -> None:
    pacer = Pacer(50.0, SystemClock())
    released: list[datetime] = []
    lock = threading.Lock()

    def take() -> None:
        at = pacer.wait()
        with lock:
            released.append(at)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(released)
    assert len(ordered) == 8 and min(spacings(ordered)) >= 0.02
    assert ordered[-1] <= datetime.now(UTC)


class YieldingClock(FrozenClock):
    """A frozen clock whose sleep lets the other threads run first, as a real sleep does."""

    def sleep(self, seconds: float) -> None:
        time.sleep(0.002)
        self.advance(seconds)


def test_eight_threads_on_a_frozen_clock_are_released_exactly_one_interval_apart() -> None:
    clock = YieldingClock(datetime(2026, 4, 14, 9, 0, tzinfo=UTC))
    start = clock.now()
    pacer = Pacer(10.0, clock)
    released: list[datetime] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(3):
            at = pacer.wait()
            with lock:
                released.append(at)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ordered = sorted(released)
    assert len(ordered) == 24
    assert spacings(ordered) == [0.1] * 23
    # Waiting callers do not add their sleeps up on the shared clock: 23 intervals, not more.
    assert clock.now() - start == timedelta(seconds=2.3)


class OversleepingClock(FrozenClock):
    """A scheduler that wakes a sleeper late now and then, as a loaded machine does."""

    def __init__(self, at: datetime, late: list[float]) -> None:
        super().__init__(at)
        self.late = late

    def sleep(self, seconds: float) -> None:
        self.advance(seconds + (self.late.pop(0) if self.late else 0.0))


def test_a_caller_woken_late_does_not_bring_the_next_release_closer_than_one_interval() -> None:
    clock = OversleepingClock(datetime(2026, 4, 14, 9, 0, tzinfo=UTC), late=[0.064, 0.0, 0.03, 0.0])
    pacer = Pacer(10.0, clock)
    released = []
    for _ in range(5):
        pacer.wait()
        released.append(clock.now())  # the moment the caller really goes
    assert min(spacings(released)) >= 0.1 - 1e-9
    assert [round(s, 3) for s in spacings(released)] == [0.164, 0.1, 0.13, 0.1]


def test_a_wall_clock_stepped_back_never_holds_the_sends_for_longer_than_one_interval() -> None:
    clock = FrozenClock(datetime(2026, 4, 14, 9, 0, tzinfo=UTC))
    pacer = Pacer(1.0, clock)
    pacer.wait()
    clock.set(clock.now() - timedelta(hours=1))  # NTP stepped the clock back an hour
    before = clock.now()
    pacer.wait()
    assert clock.now() - before == timedelta(seconds=1)
