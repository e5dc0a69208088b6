"""Twilio's answers translated into ``ChannelError`` at the boundary.

What decides the outcome (docs/channels/voice-sms.md, "What Twilio's errors mean"):

* the number is wrong (21211, 21214, 21217, 21614 and kin): permanent, ``invalid-number``:
  the engine marks the endpoint invalid and moves on to the contact point's next endpoint;
* the number unsubscribed (21610 after a STOP): permanent, ``blocked``;
* our side (429, 5xx, authentication, our caller ID, geographic permissions): a provider
  failure, never the centre's fault: the next provider takes it, else the playbook retries;
* no answer to a request that went out (a timeout): *ambiguous*: Twilio may have created the
  call, so it is never resent and ends ``unknown`` for a coordinator to check.
"""
from __future__ import annotations

from twilio.base.exceptions import TwilioException, TwilioRestException

from commtest.errors import ChannelError
from commtest.masking import mask_address, mask_in_text

__all__ = ["BLOCKED", "INVALID_NUMBER", "rest_error", "transport_error"]

# The 'To' number cannot be used: about the endpoint, not about us.
INVALID_NUMBER: dict[int, str] = {
    13223: "the number is not in a valid format",
    13224: "the number is not a valid phone number",
    21211: "invalid 'To' phone number",
    21214: "the 'To' number cannot be reached",
    21217: "the number does not appear to be valid",
    21401: "invalid phone number",
    21407: "this number type does not support SMS",
    21421: "invalid phone number",
    21612: "the 'To' number cannot receive this message (not reachable by SMS)",
    21614: "the 'To' number is not a valid mobile number (a landline cannot receive SMS)",
    30005: "unknown destination handset",
    30006: "a landline or unreachable carrier",
}
# The recipient refuses our messages.
BLOCKED: dict[int, str] = {
    21610: "the number replied STOP and is unsubscribed from our messages (Twilio error 21610)",
    30004: "the recipient blocked our messages (Twilio error 30004)",
}


def rest_error(exc: TwilioRestException | TwilioException, address: str, provider: str) -> ChannelError:
    """An HTTP error answer of Twilio's API."""
    status = int(getattr(exc, "status", 0) or 0)
    code = getattr(exc, "code", None)
    detail = mask_in_text(str(getattr(exc, "msg", "") or exc))
    who = mask_address(address)
    if isinstance(code, int) and code in INVALID_NUMBER:
        return ChannelError(f"Twilio refused {who}: {INVALID_NUMBER[code]} (error {code})", permanent=True,
                            code="invalid-number")
    if isinstance(code, int) and code in BLOCKED:
        return ChannelError(f"Twilio refused {who}: {BLOCKED[code]}", permanent=True, code="blocked")
    if status == 429 or code == 20429:
        return ChannelError(f"{provider}: Twilio is rate limiting this account (HTTP 429); the playbook's retry "
                            "applies", permanent=False, code="twilio-429")
    if status >= 500:
        return ChannelError(f"{provider}: Twilio's API failed (HTTP {status}): {detail}", permanent=False,
                            code=f"twilio-{status}")
    if status in (401, 403) or code == 20003:
        return ChannelError(f"{provider}: Twilio refused our credentials (HTTP {status}); check the account SID "
                            "and auth token", permanent=False, code="twilio-auth")
    return ChannelError(f"{provider}: Twilio refused the request (HTTP {status}, error {code}): {detail}; check this "
                        "provider's settings (caller ID, SMS sender, geographic permissions)", permanent=False,
                        code=f"twilio-{code or status}")


class TransportError(Exception):
    """The request got no HTTP answer. ``sent`` tells whether it may have reached Twilio."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.message = message
        self.sent = sent


def transport_error(exc: TransportError, provider: str) -> ChannelError:
    if exc.sent:
        return ChannelError(f"{provider}: no answer from Twilio after the request went out ({exc.message}); the "
                            "call or message may exist: not resent", permanent=False, code="twilio-timeout",
                            ambiguous=True)
    return ChannelError(f"{provider}: Twilio unreachable ({exc.message})", permanent=False, code="twilio-unreachable")
