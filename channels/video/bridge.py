"""The provider-neutral interface of a video bridge, and the values it trades in.

A bridge opens a room for a run, makes a personal join link for a contact point (its
identity signed into the link), tells who is in the room (``presence``, for bridges that
are asked) and closes the room when the run ends. Bridges that push presence (a webhook)
return nothing from ``presence``: the web app's hook turns their events into reports.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Room:
    run_id: int
    name: str  # the bridge's room name or meeting ID
    url: str  # where the room is, for logs and the documentation


@dataclass(frozen=True)
class Guest:
    """Whom a join link admits: one contact point, for one ping."""

    identity: str  # signed (channels.video.identity); the ping's provider_ref
    display_name: str
    organisation_code: str
    ping_id: int


@dataclass(frozen=True)
class Presence:
    """The bridge saw ``identity`` in ``room`` at ``at``."""

    event_id: str  # the bridge's own name for this join: duplicates are dropped by it
    identity: str
    room: str
    at: datetime
    by: str = ""  # the display name the bridge shows


@runtime_checkable
class VideoBridge(Protocol):
    provider: str
    # True when the bridge tells us who joined (webhook or poll); False: the ping's page
    # offers "I am in the video room", recorded as self-reported.
    observes_presence: bool
    polls: bool  # presence is asked with ``presence`` (else pushed to the web app)

    def room_for(self, run_id: int) -> Room: ...

    def guest(self, room: Room, ping_id: int, organisation_code: str, contact_name: str) -> Guest: ...

    def open_room(self, room: Room, until: datetime) -> None:
        """Make sure the room exists (idempotent). ``ChannelError`` when the bridge is down."""
        ...

    def join_link(self, room: Room, guest: Guest, expires_at: datetime) -> str: ...

    def presence(self, room: Room) -> list[Presence]:
        """Who is in the room now (polling bridges). ``ChannelError`` when the bridge cannot be asked."""
        ...

    def close_room(self, room: Room) -> None:
        """End the room (idempotent: a room already gone is closed). ``ChannelError`` on failure."""
        ...

    def existing_rooms(self) -> list[Room]:
        """Our rooms the bridge still has open (to adopt them after a restart); may be empty."""
        ...

    def close(self) -> None: ...


def display_name(contact_name: str, organisation_code: str) -> str:
    """How a guest appears in the room: ``Permanentie NCCN (BE-NCCN)``."""
    return f"{contact_name} ({organisation_code})"[:120]
