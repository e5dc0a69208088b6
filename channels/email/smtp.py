"""The SMTP provider of the e-mail channel (aiosmtplib).

``send`` is called from one of the engine's worker threads, so it runs its own event
loop with ``asyncio.run``. SMTP's own answer decides whether a retry may help: a 4xx, a
refused connection or a timeout is temporary; a 5xx on RCPT means the mailbox does not
exist (the engine marks the ping ``bounced`` and the endpoint suspect).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

import aiosmtplib
from aiosmtplib import errors as smtp_errors

from channels.base import ChannelReport, Notice, OutgoingPing, SendResult
from channels.email.message import build_message
from commtest.clock import Clock
from commtest.errors import ChannelError
from commtest.masking import mask_address
from commtest.settings import Settings


class SmtpChannel:
    kind = "email"
    provider = "smtp"

    def __init__(self, settings: Settings, clock: Clock, *, simulated: bool = False) -> None:
        self.settings = settings
        self.clock = clock
        # True when the mailboxes behind the server are played by simulated officers (the demo).
        self.simulated = simulated

    @classmethod
    def create(cls, kind: str, settings: Settings, clock: Clock) -> SmtpChannel:
        if kind != "email":
            raise ChannelError(f"the smtp provider sends e-mail only, not {kind!r}", permanent=True)
        return cls(settings, clock)

    # -- Channel -----------------------------------------------------------------
    def send(self, ping: OutgoingPing) -> SendResult:
        built = build_message(ping, mail_from=self.settings.mail_from, reply_address=self.settings.reply_address,
                              clock=self.clock)
        try:
            _run(lambda: self._send(built.message, built.envelope_from, ping.address))
        except smtp_errors.SMTPRecipientRefused as exc:
            raise _refused(exc.code, exc.message, ping.address) from exc
        except smtp_errors.SMTPRecipientsRefused as exc:
            first = exc.recipients[0] if exc.recipients else None
            raise _refused(first.code if first else 550, first.message if first else "refused", ping.address) from exc
        except smtp_errors.SMTPResponseException as exc:
            # Our sender, our login or the content refused: not the centre's mailbox.
            # Retrying may help for 4xx; for 5xx a person must look at our configuration.
            raise ChannelError(f"SMTP server answered {exc.code} {exc.message}", permanent=False,
                               code=f"smtp-{exc.code}") from exc
        except (smtp_errors.SMTPException, OSError, asyncio.TimeoutError) as exc:
            raise ChannelError(f"SMTP server {self.settings.smtp_host}:{self.settings.smtp_port} unreachable: "
                               f"{type(exc).__name__}: {exc}", permanent=False, code="smtp-unreachable") from exc
        return SendResult(provider_ref=built.message_id)

    async def _send(self, message: object, sender: str, recipient: str) -> None:
        await aiosmtplib.send(message, sender=sender, recipients=[recipient], **_server(self.settings))  # type: ignore[arg-type]

    def send_notice(self, notice: Notice) -> str | None:
        """A plain message without acknowledgement link (e.g. a test announcement)."""
        from email.message import EmailMessage
        from email.utils import format_datetime, make_msgid

        msg = EmailMessage()
        msg["From"] = self.settings.mail_from
        msg["To"] = notice.address
        msg["Subject"] = notice.subject
        msg["Date"] = format_datetime(self.clock.now())
        msg["Message-ID"] = make_msgid(domain=self.settings.mail_from.rsplit("@", 1)[-1])
        msg["Content-Language"] = notice.language
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to a notice, please
        msg.set_content(notice.body)
        send_message(self.settings, msg, [notice.address])
        return str(msg["Message-ID"])

    def poll_reports(self, now: datetime) -> list[ChannelReport]:
        return []  # replies, auto-replies and bounces come back through the mailbox reader

    def close(self) -> None:
        pass


def _run(make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run an SMTP coroutine to completion from synchronous code.

    The engine calls ``send`` from worker threads (no event loop there: ``asyncio.run``).
    A caller that already runs an event loop in this thread (a web request, a test
    client) gets a short-lived thread of its own instead of "asyncio.run() cannot be
    called from a running event loop"."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make())
        return
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(make())).result()


def _server(settings: Settings) -> dict[str, Any]:
    """How to reach and log in to the configured SMTP server (aiosmtplib keyword arguments)."""
    return {
        "hostname": settings.smtp_host,
        "port": settings.smtp_port,
        "use_tls": settings.smtp_security == "tls",
        "start_tls": settings.smtp_security == "starttls",
        "username": settings.smtp_username,
        "password": settings.smtp_password.get_secret_value() if settings.smtp_password else None,
        "timeout": settings.smtp_timeout_seconds,
    }


def send_message(settings: Settings, message: object, recipients: list[str] | None = None) -> None:
    """Send a ready-made message (e.g. the monthly report) through the configured SMTP server."""
    try:
        _run(lambda: aiosmtplib.send(message, recipients=recipients, **_server(settings)))  # type: ignore[arg-type]
    except (smtp_errors.SMTPException, OSError, asyncio.TimeoutError) as exc:
        raise ChannelError(f"SMTP server {settings.smtp_host}:{settings.smtp_port}: {type(exc).__name__}: {exc}",
                           permanent=False, code="smtp-error") from exc


def _refused(code: int, message: str, address: str) -> ChannelError:
    where = mask_address(address)
    if 500 <= code < 600:
        return ChannelError(f"{where} refused: {code} {message}", permanent=True, code="bounced")
    return ChannelError(f"{where} temporarily refused: {code} {message}", permanent=False, code=f"smtp-{code}")
