"""Fuzz the e-mail parsers: whatever arrives in the reply mailbox is classified (never an
exception: one poison message must not stop the reader), and whatever a template or the
directory puts in a ping becomes a message or a ``ChannelError``."""
from __future__ import annotations

import base64
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from channels.email.inbound import InboundMail, RawMail, classify, parse
from channels.email.message import build_message, build_reply, plus_address, plus_tag
from commtest.errors import ChannelError
from tests.channels.email_support import TOKEN, outgoing
from tests.channels.test_email_inbound import CLOCK

pytestmark = pytest.mark.fuzz

HEADERS = ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References", "Content-Type",
           "Content-Transfer-Encoding", "MIME-Version", "Auto-Submitted", "Precedence", "Return-Path", "Delivered-To",
           "X-Original-To", "List-Id", "X-Autoreply", "X-Commtest-Ping", "Date", "Content-Disposition"]
VALUES = st.text(max_size=60) | st.sampled_from([
    f"ack+{TOKEN}@coord.example", f"<ack+{TOKEN}@coord.example>", "<>", "", "=?utf-8?b?w6k=?=", "=?x-unknown?q?a?=",
    "=?utf-8?q?=ZZ?=", "multipart/report; report-type=delivery-status; boundary=b", "multipart/mixed; boundary=",
    "text/plain; charset=x-nope", "text/plain; charset=\"utf-8", "message/rfc822", "text/rfc822-headers",
    "message/delivery-status", "base64", "quoted-printable", "x-uuencode", "auto-replied", "bulk",
    "<ping-7.abc@coord.example>", "(comment <nested>) <a@b>", "\"unterminated <a@b>", "a@", "@b", "<<<>>>",
    "Mon, 32 Foo 2026 25:61:61 +9999", "=?utf-8?b?" + "A" * 200 + "?=",
])  # fmt: skip
BODIES = st.binary(max_size=300) | st.sampled_from([
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b\r\nStatus: 5.1.1\r\n\r\n--b--",
    b"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <ping-1.x@y>\r\n--b--",
    b"--b\r\nContent-Type: message/rfc822\r\n\r\nMessage-ID: <ping-2.x@y>\r\n\r\nhi\r\n--b--",
    base64.b64encode(f"http://x/ack/{TOKEN}".encode()), b"=ZZ=\r\n=\r\n", b"\x00\xff\xfe" * 50,
])  # fmt: skip


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(st.sampled_from(HEADERS) | st.text(min_size=1, max_size=10), VALUES),
                            max_size=10))
    lines = [f"{name}: {value}".encode("utf-8", "surrogatepass") for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + draw(BODIES)


def classified(data: bytes) -> InboundMail:
    mail = classify(RawMail("1", data, envelope_to=None))
    assert mail.classification in ("human", "auto-reply", "bounce", "unmatched")
    assert mail.message_key
    return mail


@given(st.binary(max_size=800))
def test_any_bytes_are_classified(data: bytes) -> None:
    classified(data)


@given(messages())
def test_any_message_is_classified(data: bytes) -> None:
    classified(data)


@given(messages(), st.text(max_size=40))
def test_a_reply_to_any_message_is_built(data: bytes, text: str) -> None:
    try:
        reply = build_reply(parse(data), "officer@centre.example", text)
    except ChannelError:
        return
    assert isinstance(reply, EmailMessage)


TEXT = st.text(max_size=80)


@given(subject=TEXT, body=TEXT, html=st.none() | TEXT, address=TEXT | st.just("desk@xa-one.example"),
       language=st.text(max_size=8) | st.just("nl"), reply=TEXT | st.just("ack@coord.example"))
def test_any_ping_becomes_a_message_or_a_channel_error(
    subject: str, body: str, html: str | None, address: str, language: str, reply: str
) -> None:
    ping = outgoing(subject=subject, body=body, html=html, address=address, language=language)
    try:
        built = build_message(ping, mail_from="commtest@coord.example", reply_address=reply, clock=CLOCK)
    except ChannelError as exc:
        assert exc.permanent
        return
    assert built.message["X-Commtest-Ping"] == "7"
    built.message.as_bytes()  # what the SMTP client will send


@given(TEXT, TEXT)
def test_plus_addresses_are_built_or_refused_and_read_back(address: str, tag: str) -> None:
    try:
        full = plus_address(address, tag)
    except ChannelError:
        return
    assert "+" in full
    plus_tag(full)
