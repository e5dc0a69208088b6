"""Build the e-mail of one ping, and (for the demo's simulated officers) a human reply.

The ping's token rides in three places so that whatever comes back can be matched:
the ``Reply-To`` and the envelope sender (which becomes ``Return-Path``, where bounces
and out-of-office replies go) are ``local+TOKEN@domain``, and the acknowledgement link
carries it too. ``Message-ID`` is ``<ping-ID.RANDOM@domain>`` so that a reply's
``In-Reply-To``/``References`` find the ping even if a server folded the address's case.
"""
from __future__ import annotations

import email.errors
import html
import re
import secrets
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid

from channels.base import OutgoingPing
from commtest.clock import Clock
from commtest.errors import ChannelError
from commtest.i18n import N_, Texts

# Exactly what ``secrets.token_urlsafe(32)`` produces: 43 URL-safe base64 characters.
TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
MESSAGE_ID_PREFIX = "ping-"

BUTTON = N_("Confirm")
EXPLAIN = N_("Press the button or reply to this e-mail to confirm you received it.")


def base_language(tag: str) -> str:
    return (tag or "en").split("-")[0].lower()


@dataclass(frozen=True)
class BuiltMessage:
    message: EmailMessage
    envelope_from: str  # MAIL FROM: becomes Return-Path, where bounces and auto-replies go
    message_id: str  # with angle brackets, as stored in Ping.provider_ref


def plus_address(address: str, tag: str) -> str:
    """``ack@d.example`` + ``TAG`` -> ``ack+TAG@d.example``. Token characters (A-Z a-z 0-9 - _)
    are all allowed unquoted in a local part (RFC 5322 atext)."""
    if "@" not in address:
        raise ChannelError(f"{address!r} is not an e-mail address (the reply address setting?)", permanent=True,
                           code="invalid_address")
    local, domain = address.rsplit("@", 1)
    local = local.split("+", 1)[0]
    return f"{local}+{tag}@{domain}"


def plus_tag(address: str) -> str | None:
    """The ``+TAG`` of an address, or None."""
    local = address.rsplit("@", 1)[0].strip("<> \"")
    if "+" not in local:
        return None
    return local.split("+", 1)[1]


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[1].strip(">")


def default_html(ping: OutgoingPing) -> str:
    """A simple, accessible rendering of the body with one big link button (inline styles:
    mail clients drop style sheets)."""
    t = Texts("officer", ping.language)
    label = t(BUTTON)
    paragraphs = "".join(
        f'<p style="margin:0 0 1em 0">{html.escape(p).replace(chr(10), "<br>")}</p>'
        for p in ping.body.split("\n\n") if p.strip()
    )
    return (
        f'<!DOCTYPE html><html lang="{html.escape(ping.language)}"><head><meta charset="utf-8">'
        f"<title>{html.escape(ping.subject)}</title></head>"
        '<body style="font-family:Arial,Helvetica,sans-serif;font-size:16px;line-height:1.5;color:#1a1a1a;'
        'background:#ffffff;margin:0;padding:24px">'
        f'<div role="article" aria-label="{html.escape(ping.subject)}" style="max-width:600px">'
        f"{paragraphs}"
        f'<p style="margin:1.5em 0"><a href="{html.escape(ping.ack_url)}" '
        'style="display:inline-block;background:#0b5394;color:#ffffff;font-size:20px;font-weight:bold;'
        'padding:14px 28px;border-radius:6px;text-decoration:none">'
        f"{html.escape(label)}</a></p>"
        f'<p style="margin:0;color:#444444;font-size:14px">{html.escape(t(EXPLAIN))}</p>'
        "</div></body></html>"
    )


def build_message(ping: OutgoingPing, *, mail_from: str, reply_address: str, clock: Clock) -> BuiltMessage:
    """The e-mail of ``ping``; a ``ChannelError`` (permanent: sending again cannot help) when
    its values cannot make one, such as a line break in a header or an address without ``@``."""
    try:
        built = _build_message(ping, mail_from=mail_from, reply_address=reply_address, clock=clock)
        bytes(built.message)  # what the SMTP client will send: fail here, not inside the provider call
    except (ValueError, TypeError, IndexError, LookupError, AttributeError, email.errors.MessageError) as exc:
        raise ChannelError(f"cannot build the e-mail: {exc}", permanent=True, code="invalid_message") from exc
    return built


def _build_message(ping: OutgoingPing, *, mail_from: str, reply_address: str, clock: Clock) -> BuiltMessage:
    domain = _domain(mail_from)
    random_part = secrets.token_hex(8)
    message_id = f"<{MESSAGE_ID_PREFIX}{ping.ping_id}.{random_part}@{domain}>"
    reply_to = plus_address(reply_address, ping.token)

    msg = EmailMessage()
    msg["From"] = mail_from
    msg["To"] = ping.address
    msg["Reply-To"] = reply_to
    msg["Subject"] = ping.subject
    msg["Date"] = format_datetime(clock.now())
    msg["Message-ID"] = message_id
    msg["X-Commtest-Ping"] = str(ping.ping_id)
    # No Auto-Submitted header: we want people to answer this one.
    body = ping.body if ping.ack_url in ping.body else f"{ping.body.rstrip()}\n\n{ping.ack_url}\n"
    msg.set_content(body)
    msg.add_alternative(ping.html or default_html(ping), subtype="html")
    msg["Content-Language"] = ping.language  # after set_content, which drops Content-* headers
    return BuiltMessage(message=msg, envelope_from=reply_to, message_id=message_id)


def build_reply(original: EmailMessage, from_addr: str, text: str) -> EmailMessage:
    """A person's reply to ``original``: sent to its Reply-To, threaded with In-Reply-To and
    References, the original quoted below (as mail clients do). A message whose headers
    cannot be read back is a ``ChannelError``."""
    try:
        return _build_reply(original, from_addr, text)
    except (ValueError, TypeError, IndexError, LookupError, AttributeError, email.errors.MessageError) as exc:
        raise ChannelError(f"cannot reply to this message: {exc}", permanent=True, code="invalid_message") from exc


def _build_reply(original: EmailMessage, from_addr: str, text: str) -> EmailMessage:
    reply = EmailMessage()
    reply_to = original.get("Reply-To") or original.get("From") or ""
    reply["From"] = from_addr
    reply["To"] = str(reply_to)
    subject = str(original.get("Subject", ""))
    reply["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    reply["Message-ID"] = make_msgid(domain=_domain(getaddresses([from_addr])[0][1] or "x@reply.example"))
    original_id = str(original.get("Message-ID", "")).strip()
    if original_id:
        reply["In-Reply-To"] = original_id
        refs = str(original.get("References", "")).split()
        reply["References"] = " ".join([*refs, original_id])
    body_part = original.get_body(preferencelist=("plain",)) if original.is_multipart() else original
    quoted = ""
    if body_part is not None:
        quoted = "\n".join(f"> {line}" for line in str(body_part.get_content()).splitlines())
    reply.set_content(f"{text}\n\n{quoted}\n")
    return reply
