"""Pacing of Twilio calls: N calls from W threads at R calls per second, in real time.

The real provider (``voice.twilio``: the SDK, our HTTP client, the pacer) places the calls on
the fake Twilio served on loopback. Two sets of figures:

* **released**: the moments the pacer let each call go, on the clock it paces with. The
  pacer guarantees these are at least 1/R apart, however many threads wait;
* **arrived**: when each create request reached the fake. After its release a request still
  crosses the SDK, httpx and the loopback, and that path varies by a few milliseconds from one
  thread to the next, so two arrivals can be a little closer than 1/R (Twilio queues a call that
  comes early rather than refusing it: this is harmless, and measured here so that it is seen).

    python bench/bench_pacing.py [--calls 20] [--rate 10] [--workers 8]

The last line printed is the RESULT line.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# The provider talks to a local fake: a simulated account, allowed only in sandbox mode.
os.environ.setdefault("COMMTEST_SANDBOX", "true")

from channels.base import OutgoingPing  # noqa: E402
from channels.twilio.config import TwilioAccount  # noqa: E402
from channels.twilio.fake import FakeTwilio  # noqa: E402
from channels.twilio.fake_script import CallScript, FakeScript  # noqa: E402
from channels.twilio.pacing import Pacer  # noqa: E402
from channels.voice.twilio import TwilioVoiceChannel  # noqa: E402
from commtest.clock import Clock, SystemClock  # noqa: E402
from commtest.settings import load_settings  # noqa: E402

SID = "AC" + "be" * 16  # fictional
TOKEN = "bench-token-not-a-secret"
CALLER = "+3225550199"


class RecordingPacer(Pacer):
    """The real pacer, noting each release."""

    def __init__(self, rate_per_second: float, clock: Clock) -> None:
        super().__init__(rate_per_second, clock)
        self.released: list[datetime] = []
        self._noted = threading.Lock()

    def wait(self) -> datetime:
        at = super().wait()
        with self._noted:
            self.released.append(at)
        return at


def figures(times: list[datetime]) -> tuple[float, list[float]]:
    ordered = sorted(times)
    gaps_ms = [(b - a).total_seconds() * 1000 for a, b in zip(ordered, ordered[1:], strict=False)]
    span = (ordered[-1] - ordered[0]).total_seconds()
    return ((len(ordered) - 1) / span if span else float("inf")), gaps_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--rate", type=float, default=10.0, help="calls per second allowed on the account")
    ap.add_argument("--workers", type=int, default=8, help="threads sending at the same time (dispatch workers)")
    args = ap.parse_args()

    clock = SystemClock()
    # Nobody answers: the bench measures the creates only (no webhooks to make).
    fake = FakeTwilio(clock, script=FakeScript(default_call=CallScript("no-answer", ring_after=3600)))
    fake.add_account(SID, TOKEN, {CALLER}, calls_per_second=1000)
    base = fake.serve(play=False)
    account = TwilioAccount("twilio", SID, TOKEN, CALLER, None, base_url=base, rate_per_second=args.rate)
    pacer = RecordingPacer(args.rate, clock)
    channel = TwilioVoiceChannel(account, load_settings(public_base_url="https://commtest.example"), clock,
                                 pacer=pacer)
    now = clock.now()
    pings = [OutgoingPing(ping_id=i, run_id=1, channel="voice", address=f"+3225{i:06d}", language="en", subject="",
                          body="This is a communication test. Please press 1.", html=None, ack_url="", ack_code="000000",
                          token="t", deadline_at=now + timedelta(minutes=5), organisation_code="XA", contact_name="desk",
                          country="BE") for i in range(args.calls)]
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(channel.send, pings))
    channel.close()
    fake.stop()

    assert len(fake.calls) == args.calls == len(pacer.released), (len(fake.calls), len(pacer.released), args.calls)
    released_rate, released_ms = figures(pacer.released)
    arrived_rate, arrived_ms = figures([c.created_at for c in fake.calls])
    expected_ms = 1000 / args.rate
    # The pacer's guarantee (a bug if broken); the arrivals are measured, not asserted.
    assert min(released_ms) >= expected_ms - 1e-3, f"the pacer released two calls {min(released_ms):.3f} ms apart"
    print(f"calls: {args.calls} from {args.workers} threads, account limit {args.rate:g}/s "
          f"(spacing at least {expected_ms:.0f} ms)")
    print(f"released by the pacer: {released_rate:.2f} calls/s; spacing min {min(released_ms):.1f} ms, "
          f"median {statistics.median(released_ms):.1f} ms, max {max(released_ms):.1f} ms")
    print(f"arrived at the fake:   {arrived_rate:.2f} calls/s; spacing min {min(arrived_ms):.1f} ms, "
          f"median {statistics.median(arrived_ms):.1f} ms, max {max(arrived_ms):.1f} ms "
          "(the HTTP path after the release varies by a few ms)")
    print(f"RESULT calls={args.calls} limit_per_s={args.rate:g} released_rate_per_s={released_rate:.2f} "
          f"released_spacing_ms_min={min(released_ms):.1f} arrived_rate_per_s={arrived_rate:.2f} "
          f"arrived_spacing_ms_min={min(arrived_ms):.1f} arrived_spacing_ms_p50={statistics.median(arrived_ms):.1f}")


if __name__ == "__main__":
    main()
