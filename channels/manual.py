"""The ``manual`` kind (radio, TETRA, satellite, a call back): a coordinator makes the
contact outside commtest and records the answer (``commtest runs record`` / ``runs ack``).

Nothing is sent and nothing answers by itself, in a sandbox rehearsal too: a manual check
without a coordinator's record ends ``no_record`` at its deadline.
"""
from __future__ import annotations

from datetime import datetime

from channels.base import ChannelReport, OutgoingPing, SendResult
from commtest.clock import Clock
from commtest.errors import ChannelError
from commtest.settings import MANUAL_PROVIDER, Settings


class CoordinatorChannel:
    kind = "manual"
    provider = MANUAL_PROVIDER
    simulated = False

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> CoordinatorChannel:
        if kind != "manual":
            raise ChannelError(f"the coordinator provider serves the manual kind only, not {kind!r}", permanent=True)
        return cls()

    def send(self, ping: OutgoingPing) -> SendResult:
        # The attempt is "sent" in the sense that the coordinator now has to make the contact.
        return SendResult(provider_ref=None)

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        return []

    def close(self) -> None:
        pass
