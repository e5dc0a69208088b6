"""What the fake Twilio keeps: accounts, calls and messages, shown as Twilio's API shows them."""
from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from typing import Any

__all__ = ["FakeAccount", "FakeCall", "FakeMessage", "new_sid", "rfc2822", "twilio_error"]

API_VERSION = "2010-04-01"
_counter = itertools.count(1)


def new_sid(prefix: str) -> str:
    """A fresh SID: two letters and 32 hex digits, as Twilio's."""
    return f"{prefix}{secrets.token_hex(12)}{next(_counter):08x}"


def rfc2822(at: datetime | None) -> str | None:
    return format_datetime(at, usegmt=True) if at else None


def twilio_error(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error body (what the SDK turns into a ``TwilioRestException``)."""
    return {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}


@dataclass
class FakeAccount:
    sid: str
    auth_token: str
    numbers: frozenset[str]  # the account's phone numbers (callers, SMS senders)
    sms_url: str | None = None  # each number's "a message comes in" webhook
    calls_per_second: float = 1.0  # Twilio queues calls beyond this
    failing: tuple[int, int] | None = None  # every create answers (HTTP status, code): an outage
    last_dial_at: datetime | None = None
    opted_out: set[tuple[str, str]] = field(default_factory=set)  # (our number, their number) after STOP


@dataclass
class FakeCall:
    sid: str
    account_sid: str
    to: str
    from_: str
    params: dict[str, list[str]]  # the form fields exactly as received
    created_at: datetime
    status: str = "queued"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    answered_by: str | None = None
    sequence: int = 0
    spoken: list[tuple[str, str, str]] = field(default_factory=list)  # (language, voice, text)
    digits: list[str] = field(default_factory=list)
    log: list[tuple[datetime, str]] = field(default_factory=list)

    def param(self, name: str, default: str = "") -> str:
        values = self.params.get(name)
        return values[0] if values else default

    def resource(self) -> dict[str, Any]:
        duration = int((self.ended_at - self.started_at).total_seconds()) if self.ended_at and self.started_at else None
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "sid": self.sid, "account_sid": self.account_sid, "to": self.to, "to_formatted": self.to,
            "from": self.from_, "from_formatted": self.from_, "status": self.status,
            "start_time": rfc2822(self.started_at), "end_time": rfc2822(self.ended_at),
            "duration": str(duration) if duration is not None else None, "price": None, "price_unit": "USD",
            "direction": "outbound-api", "answered_by": self.answered_by, "api_version": API_VERSION,
            "date_created": rfc2822(self.created_at), "date_updated": rfc2822(self.ended_at or self.created_at),
            "parent_call_sid": None, "phone_number_sid": None, "caller_name": None, "forwarded_from": None,
            "group_sid": None, "queue_time": "0", "trunk_sid": None, "annotation": None,
            "uri": f"{base}.json",
            "subresource_uris": {"notifications": f"{base}/Notifications.json", "recordings": f"{base}/Recordings.json"},
        }


@dataclass
class FakeMessage:
    sid: str
    account_sid: str
    to: str
    from_: str
    body: str
    params: dict[str, list[str]]
    created_at: datetime
    direction: str = "outbound-api"  # outbound-reply: an answer to an inbound; inbound
    status: str = "queued"
    error_code: int | None = None
    sent_at: datetime | None = None

    def param(self, name: str, default: str = "") -> str:
        values = self.params.get(name)
        return values[0] if values else default

    def resource(self) -> dict[str, Any]:
        return {
            "sid": self.sid, "account_sid": self.account_sid, "api_version": API_VERSION, "body": self.body,
            "date_created": rfc2822(self.created_at), "date_sent": rfc2822(self.sent_at),
            "date_updated": rfc2822(self.sent_at or self.created_at), "direction": self.direction,
            "error_code": self.error_code, "error_message": None, "from": self.from_,
            "messaging_service_sid": self.param("MessagingServiceSid") or None, "num_media": "0",
            "num_segments": str(max(1, -(-len(self.body) // 153))), "price": None, "price_unit": "USD",
            "status": self.status, "to": self.to,
            "uri": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}.json",
            "subresource_uris": {"media": f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{self.sid}/Media.json"},
        }
