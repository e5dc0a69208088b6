"""Classify one inbound e-mail from its raw bytes (pure: no database, no clock).

What came back is one of: a person's reply (``human``), an automatic reply such as an
out-of-office notice (``auto-reply``), a delivery-status report (``bounce``), or mail
that carries nothing pointing at a ping (``unmatched``). Which ping it concerns is told
by the candidates it carries, tried in this order by the recorder:

1. the token in a plus-address of the recipient headers (To, Delivered-To, X-Original-To,
   the envelope recipient), where replies, auto-replies and bounces are sent;
2. our ``Message-ID`` (``<ping-ID.RANDOM@domain>``) in In-Reply-To/References;
3. the token in the body (the quoted acknowledgement link, or the returned headers of
   a bounce).
"""
from __future__ import annotations

import email.errors
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import compat32, default
from email.utils import getaddresses, parseaddr
from typing import Literal, Protocol

from channels.email.message import MESSAGE_ID_PREFIX, TOKEN_RE, plus_tag

Classification = Literal["human", "auto-reply", "bounce", "unmatched"]

_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "To", "Cc", "Envelope-To", "X-Envelope-To")
_BODY_TOKEN = re.compile(r"(?:/ack/|\+)([A-Za-z0-9_-]{43})(?![A-Za-z0-9_-])")
_MSGID = re.compile(r"<([^<>\s]+)>")


@dataclass(frozen=True)
class RawMail:
    """One message as a source hands it over; ``uid`` is what ``mark_processed`` takes."""

    uid: str
    data: bytes
    mailbox: str = ""
    envelope_to: str | None = None
    received_at: datetime | None = None  # IMAP INTERNALDATE: when the server got it


class InboundSource(Protocol):
    """Where inbound mail comes from: ``ImapSource`` or ``MaildirSource``."""

    @property
    def supports_idle(self) -> bool: ...

    def fetch_new(self) -> list[RawMail]: ...

    def mark_processed(self, uid: str) -> None: ...

    def wait(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class InboundMail:
    """A classified message with everything the recorder needs to find its ping."""

    message_key: str  # Message-ID, or sha256 of the raw bytes when absent
    classification: Classification
    tokens: tuple[str, ...] = ()  # plus-address tokens first, then tokens found in the body
    references: tuple[str, ...] = ()  # our Message-IDs it refers to, with angle brackets
    sender: str = ""  # display name, else address
    sender_address: str = ""
    subject: str = ""
    detail: str = ""  # why it was classified so (the header, or the DSN's recipient and status)
    uid: str = ""
    mailbox: str = ""
    received_at: datetime | None = None
    folded_tokens: tuple[str, ...] = field(default=())  # lower-case-only plus tags (a server folded the case)


def parse(data: bytes) -> EmailMessage:
    msg = BytesParser(policy=default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    return msg


def message_key(msg: Message, data: bytes) -> str:
    mid = str(msg.get("Message-ID", "") or "").strip()
    if mid:
        return mid[:400]
    return "sha256:" + hashlib.sha256(data).hexdigest()


# What Python's e-mail package raises on a message it cannot read (its header parser has
# crashed on ``From: 0@`` with an IndexError): a parser bug must not become ours.
_UNREADABLE = (ValueError, TypeError, IndexError, KeyError, LookupError, AttributeError, AssertionError,
               RecursionError, email.errors.MessageError)


def classify(raw: RawMail) -> InboundMail:
    """Never raises: one message nobody can read must not stop the reader (it would be
    fetched again, and fail again, forever). Structured headers first; if Python's parser
    trips over them, plain headers; if even that fails, ``unmatched`` for a person to see."""
    try:
        return _classify(raw, parse(raw.data))
    except _UNREADABLE:
        pass
    try:
        return _classify(raw, BytesParser(policy=compat32).parsebytes(raw.data))
    except Exception as exc:  # noqa: BLE001 - see above: whatever the parser does, the reader goes on
        return InboundMail(message_key="sha256:" + hashlib.sha256(raw.data).hexdigest(), classification="unmatched",
                           detail=f"unreadable message ({type(exc).__name__}); not matched to any ping",
                           uid=raw.uid, mailbox=raw.mailbox, received_at=raw.received_at)


def _classify(raw: RawMail, msg: Message) -> InboundMail:
    if msg.get("X-Commtest-Ping") is not None:
        # One of our own pings (the demo's local server keeps pings and replies in one
        # Maildir; a misrouted copy could also land here): its link must not acknowledge it.
        return InboundMail(message_key=message_key(msg, raw.data), classification="unmatched",
                           subject=str(msg.get("Subject", "") or "")[:300], detail="our own ping, not a reply",
                           uid=raw.uid, mailbox=raw.mailbox, received_at=raw.received_at)
    kind, detail = _kind(msg)
    plus, folded = _plus_tokens(msg, raw.envelope_to)
    refs = _our_references(msg)
    body_tokens = [t for t in _body_tokens(msg) if t not in plus]
    tokens = tuple(dict.fromkeys([*plus, *body_tokens]))
    name, address = parseaddr(str(msg.get("From", "") or ""))
    matched_something = bool(tokens or refs)
    return InboundMail(
        message_key=message_key(msg, raw.data),
        classification=kind if matched_something else "unmatched",
        tokens=tokens,
        references=refs,
        sender=(name or address)[:200],
        sender_address=address,
        subject=str(msg.get("Subject", "") or "")[:300],
        detail=detail if matched_something else (detail or "no token, no reference to a ping"),
        uid=raw.uid,
        mailbox=raw.mailbox,
        received_at=raw.received_at,
        folded_tokens=tuple(folded),
    )


def _kind(msg: Message) -> tuple[Classification, str]:
    if msg.get_content_type() == "multipart/report" and \
            str(msg.get_param("report-type", "", header="content-type")).lower() == "delivery-status":
        return "bounce", _dsn_detail(msg)
    auto = auto_reply_reason(msg)
    if auto:
        return "auto-reply", auto
    return "human", ""


def auto_reply_reason(msg: Message) -> str:
    """Why this message is not a person's answer, or "" when it may be one."""
    auto_submitted = str(msg.get("Auto-Submitted", "") or "").strip().lower()
    if auto_submitted and auto_submitted.split(";")[0].strip() != "no":
        return f"Auto-Submitted: {auto_submitted}"
    precedence = str(msg.get("Precedence", "") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    for header in ("X-Autoreply", "X-Autorespond", "List-Id"):
        if msg.get(header) is not None:
            return f"{header}: {str(msg.get(header)).strip()}"[:200]
    return_path = msg.get("Return-Path")
    if return_path is not None and str(return_path).strip() in ("<>", ""):
        return "Return-Path: <> (null sender)"
    return ""


def _dsn_detail(msg: Message) -> str:
    """Final-Recipient and Status of the first failed recipient of a DSN (RFC 3464)."""
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
        for block in blocks[1:] or blocks:  # the first block is per-message, then per-recipient
            recipient = str(block.get("Final-Recipient", "") or "").split(";")[-1].strip()
            status = str(block.get("Status", "") or "").strip()
            action = str(block.get("Action", "") or "").strip()
            diagnostic = str(block.get("Diagnostic-Code", "") or "").split(";")[-1].strip()
            if recipient or status:
                text = f"{action or 'failed'}: {recipient} status {status}"
                return (text + (f" ({diagnostic})" if diagnostic else ""))[:500]
    return "delivery-status report"


def _plus_tokens(msg: Message, envelope_to: str | None) -> tuple[list[str], list[str]]:
    values = [str(v) for h in _RECIPIENT_HEADERS for v in (msg.get_all(h) or [])]
    if envelope_to:
        values.append(envelope_to)
    found: list[str] = []
    folded: list[str] = []
    for _name, address in getaddresses(values):
        tag = plus_tag(address) if address else None
        if tag and TOKEN_RE.fullmatch(tag):
            if tag == tag.lower() and not any(c.isupper() for c in tag):
                folded.append(tag)
            found.append(tag)
    return list(dict.fromkeys(found)), list(dict.fromkeys(folded))


def _our_references(msg: Message) -> tuple[str, ...]:
    ids: list[str] = []
    for header in ("In-Reply-To", "References"):
        for value in msg.get_all(header) or []:
            ids.extend(f"<{m}>" for m in _MSGID.findall(str(value)) if m.startswith(MESSAGE_ID_PREFIX))
    # A bounce returns our message (message/rfc822, walked into as a part with its own
    # headers) or only its headers (text/rfc822-headers).
    for part in msg.walk():
        if part is msg:
            continue
        own = str(part.get("Message-ID", "") or "")
        text = own
        if part.get_content_type() == "text/rfc822-headers":
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else ""
        for m in _MSGID.findall(text):
            if m.startswith(MESSAGE_ID_PREFIX):
                ids.append(f"<{m}>")
    return tuple(dict.fromkeys(ids))


def _body_tokens(msg: Message) -> list[str]:
    found: list[str] = []
    for part in msg.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if not ctype.startswith("text/") and ctype not in ("message/delivery-status",):
            continue
        try:
            text = part.get_content() if isinstance(part, EmailMessage) else str(part.get_payload())
        except (LookupError, ValueError, KeyError):
            continue
        found.extend(_BODY_TOKEN.findall(str(text)))
    return list(dict.fromkeys(found))
