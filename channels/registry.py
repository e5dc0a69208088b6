"""Channel providers are found through the ``commtest.channels`` entry-point group.

An entry point is named ``<kind>.<provider>`` (``email.smtp``, ``voice.sandbox``) and
points at a class with ``create(kind, settings, clock)`` (and, for named provider
configurations, ``create_named(kind, name, config, settings, clock)``). Outside plugins
register the same way as the built-in ones; classes are imported only when first used.

A kind may list several providers in failover order (``voice = ["twilio", "twilio-backup"]``);
a name that is not an entry point of its own is a named configuration
(``provider_configs.twilio-backup.type = "twilio"``).

A provider that plays the far side (the sandbox, a provider pointed at a local fake)
says so with ``simulated = True``; such a provider is only ever created when the settings
say ``sandbox = true``, so nothing is silently simulated.
"""
from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from channels.base import Channel
from commtest.clock import Clock
from commtest.errors import ConfigError, UnknownChannelKind
from commtest.settings import CHANNEL_KINDS, ENV_PREFIX, Settings

GROUP = "commtest.channels"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(_entry_points())


def plugin_of(kind: str, provider: str, settings: Settings) -> str | None:
    """The entry-point name that implements ``provider`` for ``kind``, or None."""
    eps = _entry_points()
    if f"{kind}.{provider}" in eps:
        return f"{kind}.{provider}"
    config = settings.provider_configs.get(provider)
    if config is not None and f"{kind}.{config.get('type', '')}" in eps:
        return f"{kind}.{config['type']}"
    return None


def check_channel_providers(settings: Settings) -> None:
    """Fail at start when a configured (kind, provider) has no plugin."""
    missing = [f"{kind}.{prov}" for kind, provs in settings.channels.items() for prov in provs
               if plugin_of(kind, prov, settings) is None]
    if missing:
        raise UnknownChannelKind(
            f"no channel provider installed for {', '.join(missing)}; "
            f"installed: {', '.join(available()) or 'none'} (set {ENV_PREFIX}CHANNELS, e.g. "
            '\'{"email": "smtp"}\', or name a provider_configs entry with its type)'
        )
    # A provider that can check its own settings (accounts, numbers) does so now, not at 03:00.
    for kind, provs in settings.channels.items():
        for prov in provs:
            factory: Any = _entry_points()[plugin_of(kind, prov, settings) or ""].load()
            check = getattr(factory, "check_config", None)
            if callable(check):
                check(kind, prov, settings)


def missing_kinds(settings: Settings, kinds: list[str] | tuple[str, ...] | set[str]) -> list[str]:
    """The kinds among ``kinds`` that have no provider configured."""
    return [k for k in CHANNEL_KINDS if k in kinds and not settings.providers(k)]


def not_configured_message(kind: str, where: str) -> str:
    return (f"{where} needs the {kind!r} channel, but no {kind} provider is configured: set "
            f"{ENV_PREFIX}CHANNELS (e.g. '{{\"{kind}\": \"...\"}}', see docs/channels/README.md), or "
            f"{ENV_PREFIX}SANDBOX=true for a rehearsal whose answers are simulated")


def create_channel(kind: str, settings: Settings, clock: Clock, provider: str | None = None) -> Channel:
    provider = provider or settings.primary_provider(kind)
    if not provider:
        raise UnknownChannelKind(not_configured_message(kind, "this run"))
    name = plugin_of(kind, provider, settings)
    if name is None:
        raise UnknownChannelKind(f"no channel provider {provider!r} installed for {kind!r}")
    factory: Any = _entry_points()[name].load()
    channel: Channel
    if name != f"{kind}.{provider}":
        channel = factory.create_named(kind, provider, settings.provider_configs[provider], settings, clock)
    else:
        channel = factory.create(kind, settings, clock)
    guard_simulated(channel, settings)
    return channel


def is_simulated(channel: Channel) -> bool:
    return bool(getattr(channel, "simulated", False))


def guard_simulated(channel: Channel, settings: Settings) -> None:
    if is_simulated(channel) and not settings.sandbox:
        raise ConfigError(
            f"the {channel.kind} provider {channel.provider!r} is simulated (it answers for the duty officers); "
            f"it is only allowed with {ENV_PREFIX}SANDBOX=true"
        )


class ChannelSet:
    """The channel instances of one process, created lazily by kind and provider."""

    def __init__(self, settings: Settings, clock: Clock,
                 overrides: Mapping[str, Channel | Sequence[Channel]] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self._channels: dict[tuple[str, str], Channel] = {}
        # An override is one channel, or several in failover order (tests, the demo).
        self._override_order: dict[str, list[str]] = {}
        for kind, given in (overrides or {}).items():
            chosen = list(given) if isinstance(given, Sequence) else [given]
            for channel in chosen:
                guard_simulated(channel, settings)
                self._channels[(kind, channel.provider)] = channel
            self._override_order[kind] = [c.provider for c in chosen]
        # Dispatch workers ask concurrently: one instance per kind, or the reports queued
        # in a second, discarded instance would never be polled (lost acknowledgements).
        self._lock = threading.Lock()

    def providers(self, kind: str) -> list[str]:
        """The provider names of ``kind`` in failover order (overrides replace the settings')."""
        if kind in self._override_order:
            return list(self._override_order[kind])
        return self.settings.providers(kind)

    def get(self, kind: str, provider: str | None = None) -> Channel:
        names = self.providers(kind)
        if not names:
            raise UnknownChannelKind(not_configured_message(kind, "this run"))
        name = provider or names[0]
        with self._lock:
            if (kind, name) not in self._channels:
                self._channels[(kind, name)] = create_channel(kind, self.settings, self.clock, name)
            return self._channels[(kind, name)]

    def active(self) -> list[Channel]:
        with self._lock:
            return list(self._channels.values())

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()
