"""Twilio's request signature, and the URLs Twilio calls back.

Twilio signs every webhook with the account's auth token over the *exact* URL it requested
(scheme, host, port, path and query, as we gave it) followed by the sorted POST parameters
(``X-Twilio-Signature``). We check it with the SDK's ``RequestValidator`` against the URL
rebuilt from ``COMMTEST_PUBLIC_BASE_URL``, never from the request's Host header (which a
reverse proxy rewrites, and which an attacker chooses). The local fake signs with the same
SDK function, as Twilio does.
"""
from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

__all__ = ["HOOKS_PREFIX", "SIGNATURE_HEADER", "hook_url", "is_valid", "sign"]

SIGNATURE_HEADER = "X-Twilio-Signature"
HOOKS_PREFIX = "/hooks/twilio"
VOICE_STATUS = "voice/status"
VOICE_GATHER = "voice/gather"
VOICE_AMD = "voice/amd"
SMS_STATUS = "sms/status"
SMS_INBOUND = "sms/inbound"

Params = Mapping[str, str | list[str]]


class _Multi(dict[str, list[str]]):
    """What ``RequestValidator.get_values`` reads repeated parameters from (``getall``)."""

    def getall(self, key: str) -> list[str]:
        return self[key]


def _multi(params: Params) -> _Multi:
    return _Multi({k: list(v) if isinstance(v, list) else [v] for k, v in params.items()})


def sign(auth_token: str, url: str, params: Params) -> str:
    return str(RequestValidator(auth_token).compute_signature(url, _multi(params)))


def is_valid(auth_token: str, url: str, params: Params, signature: str | None) -> bool:
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, _multi(params), signature))


def hook_url(public_base_url: str, path: str, **query: str | int) -> str:
    """``https://commtest.example/hooks/twilio/voice/status?ping=12&provider=twilio``."""
    url = f"{public_base_url.rstrip('/')}{HOOKS_PREFIX}/{path}"
    return f"{url}?{urlencode({k: str(v) for k, v in query.items()})}" if query else url
