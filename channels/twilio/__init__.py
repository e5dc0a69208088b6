"""What the Twilio providers of ``voice`` and ``sms`` share: the account settings, the SDK's
HTTP client, pacing, error mapping, request signatures, recovery look-ups, and a local fake
of Twilio's REST API (``channels.twilio.fake``) for the tests and the demo."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from channels.twilio.config import DEFAULT_PROVIDER, REAL_API, TwilioAccount, account_for, is_real_api, twilio_accounts
from channels.twilio.errors import BLOCKED, INVALID_NUMBER, rest_error, transport_error
from channels.twilio.pacing import Pacer, pacer_for
from channels.twilio.signature import SIGNATURE_HEADER, hook_url, is_valid, sign

if TYPE_CHECKING:
    from channels.twilio.connection import SentRecord, TwilioConnection
    from channels.twilio.http import TransportError, TwilioHttp

# The SDK's REST client (and ``requests`` under it, about 16 MB) is imported when a call or a
# message is first made: the web app's webhooks only check signatures and map errors.
_LAZY = {"SentRecord": "connection", "TwilioConnection": "connection", "TransportError": "http",
         "TwilioHttp": "http"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"channels.twilio.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'channels.twilio' has no attribute {name!r}")

__all__ = [
    "BLOCKED",
    "DEFAULT_PROVIDER",
    "INVALID_NUMBER",
    "Pacer",
    "REAL_API",
    "SIGNATURE_HEADER",
    "SentRecord",
    "TransportError",
    "TwilioAccount",
    "TwilioConnection",
    "TwilioHttp",
    "account_for",
    "hook_url",
    "is_real_api",
    "is_valid",
    "pacer_for",
    "rest_error",
    "sign",
    "transport_error",
    "twilio_accounts",
]
