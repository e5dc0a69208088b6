"""Channel providers are found through the ``commtest.channels`` entry-point group.

An entry point is named ``<kind>.<provider>`` (``email.smtp``, ``voice.sandbox``) and
points at a class with ``create(kind, settings, clock)``. Outside plugins register the
same way as the built-in ones; classes are imported only when first used.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points

from channels.base import Channel
from commtest.clock import Clock
from commtest.errors import UnknownChannelKind
from commtest.settings import Settings

GROUP = "commtest.channels"


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available() -> list[str]:
    return sorted(_entry_points())


def check_channel_providers(settings: Settings) -> None:
    """Fail at start when a configured (kind, provider) has no plugin."""
    eps = _entry_points()
    missing = [f"{kind}.{prov}" for kind, prov in settings.channels.items() if f"{kind}.{prov}" not in eps]
    if missing:
        raise UnknownChannelKind(
            f"no channel provider installed for {', '.join(missing)}; "
            f"installed: {', '.join(sorted(eps)) or 'none'} (set COMMTEST_CHANNELS, e.g. "
            '\'{"email": "smtp"}\')'
        )


def create_channel(kind: str, settings: Settings, clock: Clock) -> Channel:
    provider = settings.channels.get(kind)
    if provider is None:
        raise UnknownChannelKind(f"unknown channel kind {kind!r}")
    ep = _entry_points().get(f"{kind}.{provider}")
    if ep is None:
        raise UnknownChannelKind(f"no channel provider {provider!r} installed for {kind!r}")
    factory = ep.load()
    channel: Channel = factory.create(kind, settings, clock)
    return channel


class ChannelSet:
    """The channel instances of one process, created lazily by kind."""

    def __init__(self, settings: Settings, clock: Clock, overrides: dict[str, Channel] | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self._channels: dict[str, Channel] = dict(overrides or {})
        # Dispatch workers ask concurrently: one instance per kind, or the reports queued
        # in a second, discarded instance would never be polled (lost acknowledgements).
        self._lock = threading.Lock()

    def get(self, kind: str) -> Channel:
        with self._lock:
            if kind not in self._channels:
                self._channels[kind] = create_channel(kind, self.settings, self.clock)
            return self._channels[kind]

    def active(self) -> list[Channel]:
        with self._lock:
            return list(self._channels.values())

    def close(self) -> None:
        for ch in self._channels.values():
            ch.close()
        self._channels.clear()
