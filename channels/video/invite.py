"""The invitation to a run's video room, sent by e-mail to the contact point's mailbox.

A bridge hosts the room but delivers no message, so the invitation travels by mail: the
playbook's video template (subject and body, whose ``{{ ack_url }}`` opens the ping's page
with the personal join link). It carries no reply token, its Message-ID is not a ping's,
and it asks for no auto-replies: a reply to it is never taken for a video join.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from channels.base import OutgoingPing
from commtest.clock import Clock
from commtest.errors import ChannelError
from commtest.masking import mask_address
from commtest.settings import Settings

HEADER = "X-Commtest-Video-Invite"  # the run and ping, for the demo's simulated officers and for support


@dataclass(frozen=True)
class VideoInvite:
    ping: OutgoingPing
    room_url: str

    @property
    def to(self) -> str:
        if not self.ping.invite_address:
            raise ChannelError(
                "the video invitation has nowhere to go: the contact point has no usable e-mail endpoint; add one "
                "(commtest directory import) so the invitation with the join link can reach it",
                permanent=False, code="no-invite-address",
            )
        return self.ping.invite_address


class InviteCourier(Protocol):
    def deliver(self, invite: VideoInvite) -> str:
        """Send the invitation; return its reference (Message-ID). ``ChannelError`` when it could not go."""
        ...


class SmtpInviteCourier:
    """Sends invitations through the configured SMTP server (COMMTEST_SMTP_*)."""

    def __init__(self, settings: Settings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock

    def deliver(self, invite: VideoInvite) -> str:
        from channels.email.smtp import send_message

        to = invite.to
        msg = build_invitation(invite, self.settings.mail_from, self.clock)
        try:
            send_message(self.settings, msg, [to])
        except ChannelError as exc:
            raise ChannelError(f"the video invitation to {mask_address(to)} could not be sent: {exc.message}",
                               permanent=False, code=exc.code or "smtp-error") from exc
        return str(msg["Message-ID"])


def build_invitation(invite: VideoInvite, mail_from: str, clock: Clock) -> EmailMessage:
    ping = invite.ping
    domain = mail_from.rsplit("@", 1)[-1]
    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = invite.to
    msg["Subject"] = ping.subject or ping.body.splitlines()[0][:120]
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = f"<video-invite-{ping.ping_id}.{secrets.token_hex(6)}@{domain}>"
    msg["Content-Language"] = ping.language
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies, please
    msg[HEADER] = f"run={ping.run_id}; ping={ping.ping_id}"
    msg.set_content(ping.body)
    return msg
