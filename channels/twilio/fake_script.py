"""How the fake's simulated officers behave, per phone number and attempt.

A number has a list of behaviours, one per call (or SMS) to it, in order; the last one
repeats. Times are seconds of the fake's clock (simulated time in the demo).

    FakeScript(calls={"+3225550110": [CallScript("busy"), CallScript("person", keys=(("1", 8),))]},
               messages={"+32470550110": [SmsScript(replies=(("000000", 20), ("{code}", 60)))]})
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from commtest.errors import ConfigError

__all__ = ["CallScript", "FakeScript", "SmsScript"]

Answer = Literal["person", "machine", "busy", "no-answer", "failed", "fax"]
Delivery = Literal["delivered", "undelivered", "failed"]


@dataclass(frozen=True)
class CallScript:
    """One call. ``keys``: for a person, the key pressed at each ``<Gather>`` in turn, with the
    seconds after that prompt started; a prompt without a key left gets silence."""

    answer: Answer = "person"
    ring_after: float = 2.0  # after the call starts dialling (Twilio queues at the account's rate)
    answer_after: float = 8.0  # picked up, for a person or a machine
    keys: tuple[tuple[str, float], ...] = (("1", 6.0),)
    end_after: float = 4.0  # busy / failed: after dialling
    amd_after: float = 3.0  # answering-machine detection's verdict, after the pick-up
    sip: str = ""  # SipResponseCode of a failed call (404: no such number)
    api_error: tuple[int, int] | None = None  # (HTTP status, Twilio code) answered to Calls.create


@dataclass(frozen=True)
class SmsScript:
    """One SMS. ``replies``: (text, seconds after delivery); ``{code}`` is the reply code the
    officer reads in our message; ``STOP`` unsubscribes the number."""

    replies: tuple[tuple[str, float], ...] = (("{code}", 30.0),)
    delivery: Delivery = "delivered"
    error_code: int | None = None  # of an undelivered or failed SMS
    deliver_after: float = 2.0
    api_error: tuple[int, int] | None = None  # answered to Messages.create


@dataclass
class FakeScript:
    calls: dict[str, list[CallScript]] = field(default_factory=dict)
    messages: dict[str, list[SmsScript]] = field(default_factory=dict)
    default_call: CallScript = field(default_factory=CallScript)
    default_sms: SmsScript = field(default_factory=SmsScript)
    landlines: frozenset[str] = frozenset()  # refuse SMS: 21614
    unknown_numbers: frozenset[str] = frozenset()  # do not exist: 21211 on create

    def call_for(self, number: str, nth: int) -> CallScript:
        items = self.calls.get(number)
        return items[min(nth, len(items) - 1)] if items else self.default_call

    def sms_for(self, number: str, nth: int) -> SmsScript:
        items = self.messages.get(number)
        return items[min(nth, len(items) - 1)] if items else self.default_sms

    @classmethod
    def from_data(cls, data: dict[str, Any], source: str = "<fake script>") -> FakeScript:
        """The demo's script as plain data: ``{"calls": {number: [ {answer, keys: [[digit, s]], ...} ]},
        "messages": {number: [ {replies: [[text, s]], ...} ]}}``."""
        def call(item: dict[str, Any], where: str) -> CallScript:
            try:
                keys = tuple((str(k), float(s)) for k, s in item.get("keys", [("1", 6.0)]))
                err = item.get("api_error")
                return CallScript(**{**{k: v for k, v in item.items() if k not in ("keys", "api_error")},
                                     "keys": keys, "api_error": tuple(err) if err else None})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{source}: {where}: {exc}") from exc

        def sms(item: dict[str, Any], where: str) -> SmsScript:
            try:
                replies = tuple((str(t), float(s)) for t, s in item.get("replies", [("{code}", 30.0)]))
                err = item.get("api_error")
                return SmsScript(**{**{k: v for k, v in item.items() if k not in ("replies", "api_error")},
                                    "replies": replies, "api_error": tuple(err) if err else None})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{source}: {where}: {exc}") from exc

        return cls(
            calls={n: [call(i, f"calls.{n}[{x}]") for x, i in enumerate(v)] for n, v in (data.get("calls") or {}).items()},
            messages={n: [sms(i, f"messages.{n}[{x}]") for x, i in enumerate(v)]
                      for n, v in (data.get("messages") or {}).items()},
            landlines=frozenset(data.get("landlines") or ()),
            unknown_numbers=frozenset(data.get("unknown_numbers") or ()),
        )
