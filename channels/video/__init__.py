"""The video channel: a room per run on a shared bridge, a personal join link per contact
point, and the bridge's own account of who joined (a webhook or a poll).

A bridge is an adapter behind the small ``VideoBridge`` protocol (``bridge.py``): Jitsi Meet
(``jitsi.py``, presence from Prosody's event_sync webhook) and BigBlueButton
(``bigbluebutton.py``, presence by polling ``getMeetingInfo``). ``VideoChannel``
(``channel.py``) is the Channel the engine sees: it opens the run's room, sends the
invitation (``invite.py``) and turns presence into acknowledgements (method ``video-join``).
Local fakes that speak the bridges' real wire protocols live in ``fake_jitsi.py`` and
``fake_bigbluebutton.py``.
"""
from __future__ import annotations

from channels.video.bridge import Guest, Presence, Room, VideoBridge
from channels.video.channel import VideoChannel
from channels.video.invite import InviteCourier, SmtpInviteCourier, VideoInvite

__all__ = ["Guest", "InviteCourier", "Presence", "Room", "SmtpInviteCourier", "VideoBridge", "VideoChannel", "VideoInvite"]
