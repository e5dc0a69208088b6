"""The personal join link of a video ping, for the ping's page in the web app.

Derived from the settings alone (the room and the identity come from the bridge's secret),
so any replica of the web app shows the same link the daemon's invitation pointed to,
without a call to the bridge.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from channels.video.bridge import VideoBridge
from commtest.clock import Clock
from commtest.errors import ConfigError
from commtest.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JoinLink:
    url: str
    provider: str
    observes_presence: bool  # False: the page offers "I am in the video room" (self-reported)


def bridge_for(provider: str, settings: Settings, clock: Clock) -> VideoBridge | None:
    """The bridge behind a video provider name, or None when it is not a bridge (the sandbox)."""
    from channels.video.bigbluebutton import BigBlueButtonBridge
    from channels.video.jitsi import JitsiBridge

    try:
        if provider == "jitsi":
            return JitsiBridge.from_settings(settings, clock)
        if provider == "bigbluebutton":
            return BigBlueButtonBridge.from_settings(settings, clock)
    except ConfigError as exc:
        log.error("video provider %s is not configured: %s", provider, exc)
    return None


def join_link(settings: Settings, clock: Clock, *, provider: str, run_id: int, ping_id: int, organisation_code: str,
              contact_name: str, deadline_at: datetime | None) -> JoinLink | None:
    bridge = bridge_for(provider, settings, clock)
    if bridge is None:
        return None
    try:
        room = bridge.room_for(run_id)
        guest = bridge.guest(room, ping_id, organisation_code, contact_name)
        expires = (deadline_at or clock.now()) + settings.video_join_grace
        return JoinLink(bridge.join_link(room, guest, expires), provider, bridge.observes_presence)
    finally:
        bridge.close()
