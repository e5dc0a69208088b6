"""A Twilio account as the ``twilio`` providers use it.

The provider named ``twilio`` uses the ``COMMTEST_TWILIO_*`` settings. Any other name in
``COMMTEST_CHANNELS`` whose ``COMMTEST_PROVIDER_CONFIGS`` entry has ``type = "twilio"`` is a
second account (``twilio-backup``) for failover: its settings are the entry's keys, and its
auth token comes from the environment only, ``COMMTEST_PROVIDER_TWILIO_BACKUP_AUTH_TOKEN``
(or the file ``..._AUTH_TOKEN_FILE`` names).

A base URL other than Twilio's own API (a local fake) makes the account *simulated*: what it
carries is marked simulated everywhere, and the registry only allows it with
``COMMTEST_SANDBOX=true``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from commtest.errors import ConfigError
from commtest.settings import ENV_PREFIX, Settings, provider_secret_env

__all__ = ["DEFAULT_PROVIDER", "REAL_API", "TwilioAccount", "account_for", "is_real_api", "twilio_accounts"]

REAL_API = "https://api.twilio.com"
DEFAULT_PROVIDER = "twilio"
PLUGIN_TYPE = "twilio"
_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
MachineDetection = Literal["Enable", "DetectMessageEnd", "off"]


@dataclass(frozen=True)
class TwilioAccount:
    """One Twilio account (or sub-account) and how we use it. ``provider`` is the name the
    settings give it (``twilio``, ``twilio-backup``): it is what the report says carried a ping."""

    provider: str
    account_sid: str
    auth_token: str = field(repr=False)
    caller_id: str | None
    sms_from: str | None
    base_url: str = REAL_API
    rate_per_second: float = 1.0
    timeout_seconds: float = 15.0
    ring_seconds: int = 30
    machine_detection: MachineDetection = "Enable"
    voices: Mapping[str, str] = field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        """True when the API is not Twilio's (a local fake plays the far side)."""
        return not is_real_api(self.base_url)


class _NamedConfig(BaseModel):
    """A ``provider_configs`` entry of type twilio (its auth token comes from the environment)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["twilio"]
    account_sid: str
    caller_id: str | None = None
    sms_from: str | None = None
    base_url: str = REAL_API
    rate_per_second: float = Field(1.0, gt=0, le=100)
    timeout_seconds: float = Field(15.0, gt=0, le=120)
    ring_seconds: int = Field(30, ge=5, le=600)
    machine_detection: MachineDetection = "Enable"


def is_real_api(url: str) -> bool:
    """Twilio's REST API (``https://api.twilio.com``, or a regional edge such as
    ``https://api.dublin.ie1.twilio.com``)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = parts.hostname or ""
    return (parts.scheme == "https" and parts.port in (None, 443) and parts.path in ("", "/")
            and (host == "api.twilio.com" or (host.startswith("api.") and host.endswith(".twilio.com"))))


def _check(account: TwilioAccount, where: Mapping[str, str]) -> TwilioAccount:
    """Refuse what Twilio would refuse at 03:00: every message names the setting to fix."""
    problems = []
    if not _ACCOUNT_SID.match(account.account_sid):
        problems.append(f"{where['account_sid']}: expected AC followed by 32 hexadecimal characters "
                        "(the Account SID on the Twilio console's dashboard)")
    if not account.auth_token:
        problems.append(f"{where['auth_token']}: missing; set it in the environment (or {where['auth_token']}_FILE)")
    if account.caller_id is not None and not _E164.match(account.caller_id):
        problems.append(f"{where['caller_id']}: expected an E.164 number such as +3225550100, not {account.caller_id!r}")
    if account.sms_from is not None and not (_E164.match(account.sms_from) or _SERVICE_SID.match(account.sms_from)):
        problems.append(f"{where['sms_from']}: expected an E.164 number or a Messaging Service SID (MG...), "
                        f"not {account.sms_from!r}")
    parts = urlsplit(account.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(f"{where['base_url']}: expected an http(s) URL such as {REAL_API}, not {account.base_url!r}")
    if problems:
        raise ConfigError(f"Twilio provider {account.provider!r}:\n  " + "\n  ".join(problems))
    return account


def default_account(settings: Settings) -> TwilioAccount:
    """The account of the provider ``twilio`` (the ``COMMTEST_TWILIO_*`` settings)."""
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    account = TwilioAccount(
        provider=DEFAULT_PROVIDER, account_sid=settings.twilio_account_sid or "", auth_token=token,
        caller_id=settings.twilio_caller_id or None, sms_from=settings.twilio_sms_from or None,
        base_url=settings.twilio_base_url, rate_per_second=settings.twilio_rate_per_second,
        timeout_seconds=settings.twilio_timeout_seconds, ring_seconds=settings.twilio_ring_seconds,
        machine_detection=settings.twilio_machine_detection, voices=dict(settings.twilio_voices),
    )
    names = {k: f"{ENV_PREFIX}TWILIO_{k.upper()}" for k in ("account_sid", "auth_token", "caller_id", "sms_from",
                                                            "base_url")}
    return _check(account, names)


def named_account(name: str, config: Mapping[str, Any], settings: Settings) -> TwilioAccount:
    """The account of a named provider configuration (``twilio-backup``)."""
    try:
        parsed = _NamedConfig.model_validate(dict(config))
    except ValidationError as exc:
        lines = [f"{ENV_PREFIX}PROVIDER_CONFIGS: {name}.{'.'.join(str(p) for p in e['loc'])}: "
                 + (f"unknown key; expected one of: {', '.join(_NamedConfig.model_fields)}"
                    if e["type"] == "extra_forbidden" else str(e["msg"]))
                 for e in exc.errors()]
        raise ConfigError("\n".join(lines)) from exc
    secret = settings.provider_secret(name, "auth_token")
    account = TwilioAccount(
        provider=name, account_sid=parsed.account_sid, auth_token=secret.get_secret_value() if secret else "",
        caller_id=parsed.caller_id, sms_from=parsed.sms_from, base_url=parsed.base_url,
        rate_per_second=parsed.rate_per_second, timeout_seconds=parsed.timeout_seconds,
        ring_seconds=parsed.ring_seconds, machine_detection=parsed.machine_detection,
        voices=dict(settings.twilio_voices),
    )
    where = {k: f"{ENV_PREFIX}PROVIDER_CONFIGS: {name}.{k}" for k in ("account_sid", "caller_id", "sms_from", "base_url")}
    where["auth_token"] = provider_secret_env(name, "auth_token")
    return _check(account, where)


def account_for(provider: str, settings: Settings) -> TwilioAccount:
    if provider == DEFAULT_PROVIDER:
        return default_account(settings)
    config = settings.provider_configs.get(provider)
    if config is None or config.get("type") != PLUGIN_TYPE:
        raise ConfigError(f"{provider!r} is not a Twilio provider: name it 'twilio', or describe it in "
                          f"{ENV_PREFIX}PROVIDER_CONFIGS with type = 'twilio'")
    return named_account(provider, config, settings)


def twilio_accounts(settings: Settings) -> list[TwilioAccount]:
    """Every Twilio account a configured kind uses (for the webhooks' signature checks)."""
    names: list[str] = []
    for providers in settings.channels.values():
        for name in providers:
            is_twilio = name == DEFAULT_PROVIDER or settings.provider_configs.get(name, {}).get("type") == PLUGIN_TYPE
            if is_twilio and name not in names:
                names.append(name)
    return [account_for(name, settings) for name in names]
