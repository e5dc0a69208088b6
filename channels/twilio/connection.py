"""One Twilio account as the providers talk to it: the SDK's ``Client`` on our HTTP client,
paced, with Twilio's errors translated at this boundary (``channels.twilio.errors``)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.rest import Client

from channels.twilio.config import TwilioAccount
from channels.twilio.errors import rest_error, transport_error
from channels.twilio.http import TransportError, TwilioHttp
from channels.twilio.pacing import Pacer, pacer_for
from commtest.clock import Clock, ensure_utc
from commtest.errors import ChannelError

__all__ = ["SentRecord", "TwilioConnection"]

T = TypeVar("T")


@dataclass(frozen=True)
class SentRecord:
    """A call or message Twilio has, as its list endpoints show it (for recovery)."""

    sid: str
    to: str
    created_at: datetime
    status: str
    body: str = ""


class TwilioConnection:
    def __init__(self, account: TwilioAccount, clock: Clock, kind: str, *,
                 http_client: httpx.Client | None = None, pacer: Pacer | None = None) -> None:
        self.account = account
        self.clock = clock
        self.http = TwilioHttp(account.base_url, timeout=account.timeout_seconds, client=http_client)
        self.client = Client(account.account_sid, account.auth_token, http_client=self.http)
        self.pacer = pacer or pacer_for(account.account_sid, kind, account.rate_per_second, clock)
        # The SDK imports its REST resources on first use (about 60 ms): do it now, not between
        # the pacer's release of the first call of a run and its request (no request is made).
        _ = self.client.calls if kind == "voice" else self.client.messages

    def create(self, address: str, make: Callable[[Client], T]) -> T:
        """Wait for this account's next slot, then make exactly one create request."""
        self.pacer.wait()
        return self.call(address, make)

    def call(self, address: str, make: Callable[[Client], T]) -> T:
        try:
            return make(self.client)
        except TwilioRestException as exc:
            raise rest_error(exc, address, self.account.provider) from exc
        except TransportError as exc:
            raise transport_error(exc, self.account.provider) from exc
        except TwilioException as exc:  # e.g. a list page that is not JSON
            raise ChannelError(f"{self.account.provider}: unexpected answer from Twilio: {exc}", permanent=False,
                               code="twilio-answer") from exc

    # -- what Twilio has (recovery after a crash) -------------------------------------
    # The newest 50 to the number, filtered by creation time here: Twilio's StartTime and DateSent
    # filters would leave out a call still queued or a message not yet sent, the very ones we look for.
    def calls_to(self, to: str, since: datetime) -> list[SentRecord]:
        rows = self.call(to, lambda c: c.calls.list(to=to, limit=50, page_size=50))
        return [r for r in (_record(row, "") for row in rows) if r.created_at >= since]

    def messages_to(self, to: str, since: datetime) -> list[SentRecord]:
        rows = self.call(to, lambda c: c.messages.list(to=to, limit=50, page_size=50))
        return [r for r in (_record(row, str(getattr(row, "body", "") or "")) for row in rows) if r.created_at >= since]

    def close(self) -> None:
        self.http.close()


def _record(row: Any, body: str) -> SentRecord:
    created = getattr(row, "date_created", None)
    return SentRecord(sid=str(row.sid), to=str(row.to), created_at=ensure_utc(created or datetime.min),
                      status=str(getattr(row, "status", "") or ""), body=body)
