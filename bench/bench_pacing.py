"""Pacing of Twilio calls: N calls from W threads at R calls per second, in real time.

The real provider (``voice.twilio``: the SDK, our HTTP client, the pacer) places the calls on
the fake Twilio served on loopback, which records when each create request arrived; the
figures are the spacing between consecutive arrivals and the rate achieved.

    python bench/bench_pacing.py [--calls 20] [--rate 10] [--workers 8]
"""
from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.base import OutgoingPing  # noqa: E402
from channels.twilio.config import TwilioAccount  # noqa: E402
from channels.twilio.fake import FakeTwilio  # noqa: E402
from channels.twilio.fake_script import CallScript, FakeScript  # noqa: E402
from channels.voice.twilio import TwilioVoiceChannel  # noqa: E402
from commtest.clock import SystemClock  # noqa: E402
from commtest.settings import load_settings  # noqa: E402

SID = "AC" + "be" * 16  # fictional
TOKEN = "bench-token-not-a-secret"
CALLER = "+3225550199"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
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
    channel = TwilioVoiceChannel(account, load_settings(public_base_url="https://commtest.example"), clock)
    now = clock.now()
    pings = [OutgoingPing(ping_id=i, run_id=1, channel="voice", address=f"+3225{i:06d}", language="en", subject="",
                          body="This is a communication test. Please press 1.", html=None, ack_url="", ack_code="000000",
                          token="t", deadline_at=now + timedelta(minutes=5), organisation_code="XA", contact_name="desk",
                          country="BE") for i in range(args.calls)]
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        list(pool.map(channel.send, pings))
    channel.close()
    fake.stop()

    arrived = sorted(c.created_at for c in fake.calls)
    assert len(arrived) == args.calls, (len(arrived), args.calls)
    gaps_ms = [(b - a).total_seconds() * 1000 for a, b in zip(arrived, arrived[1:], strict=False)]
    span = (arrived[-1] - arrived[0]).total_seconds()
    rate = (len(arrived) - 1) / span if span else float("inf")
    print(f"calls: {args.calls} from {args.workers} threads, account limit {args.rate:g}/s "
          f"(expected spacing {1000 / args.rate:.0f} ms)")
    print(f"first to last create: {span:.2f} s; achieved {rate:.2f} calls/s")
    print(f"spacing: min {min(gaps_ms):.1f} ms, median {statistics.median(gaps_ms):.1f} ms, max {max(gaps_ms):.1f} ms")
    print(f"RESULT calls={args.calls} rate_per_s={rate:.2f} spacing_ms_p50={statistics.median(gaps_ms):.1f} "
          f"spacing_ms_max={max(gaps_ms):.1f}")


if __name__ == "__main__":
    main()
