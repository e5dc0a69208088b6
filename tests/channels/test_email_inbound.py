"""Building the ping's message, and classifying what comes back (pure, no servers)."""
from __future__ import annotations

import secrets
from datetime import datetime
from email.message import EmailMessage

import pytest

from channels.email.inbound import RawMail, auto_reply_reason, classify, parse
from channels.email.message import build_message, build_reply, plus_address, plus_tag
from commtest.clock import UTC, FrozenClock
from tests.channels.email_support import TOKEN, outgoing

CLOCK = FrozenClock(datetime(2026, 4, 14, 8, 0, tzinfo=UTC))


def built(**kw: object) -> EmailMessage:
    return build_message(outgoing(**kw), mail_from="commtest@coord.example", reply_address="ack@coord.example",
                         clock=CLOCK).message


def test_the_ping_message_carries_the_token_in_reply_to_and_envelope_sender() -> None:
    b = build_message(outgoing(), mail_from="commtest@coord.example", reply_address="ack@coord.example", clock=CLOCK)
    assert b.message["Reply-To"] == f"ack+{TOKEN}@coord.example"
    assert b.envelope_from == f"ack+{TOKEN}@coord.example"
    assert b.message_id.startswith("<ping-7.") and b.message_id.endswith("@coord.example>")
    assert b.message["Message-ID"] == b.message_id
    assert b.message["Content-Language"] == "nl"
    assert b.message["X-Commtest-Ping"] == "7"
    assert b.message["Auto-Submitted"] is None  # we want people to answer


def test_the_ping_message_is_text_and_html_with_a_confirm_button_in_the_language() -> None:
    msg = built(language="de")
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    assert TOKEN in text.get_content()
    assert f'href="http://127.0.0.1:8080/ack/{TOKEN}"' in html.get_content()
    assert ">Bestätigen</a>" in html.get_content()
    assert "<script" not in html.get_content()


def test_a_template_html_is_used_as_given_and_the_link_is_added_to_a_text_without_it() -> None:
    msg = built(html="<p>Eigen opmaak</p>", body="Geen link hier.")
    assert msg.get_body(preferencelist=("html",)).get_content().strip() == "<p>Eigen opmaak</p>"  # type: ignore[union-attr]
    assert msg.get_body(preferencelist=("plain",)).get_content().rstrip().endswith(TOKEN)  # type: ignore[union-attr]


@pytest.mark.parametrize("token", [secrets.token_urlsafe(32) for _ in range(20)] + ["-_" * 21 + "-", TOKEN])
def test_any_token_survives_plus_addressing_and_parsing(token: str) -> None:
    address = plus_address("ack@coord.example", token)
    raw = f"To: Duty <{address}>\r\nFrom: x@y.example\r\nSubject: Re\r\n\r\nok\r\n".encode()
    assert plus_tag(address) == token
    assert classify(RawMail("1", raw)).tokens == (token,)


def reply_bytes(original: EmailMessage | None = None, **headers: str) -> bytes:
    original = original or built()
    reply = build_reply(original, "Jan Peeters <jan.peeters@xa-one.example>", "Ontvangen, alles in orde.")
    for name, value in headers.items():
        reply[name.replace("_", "-")] = value
    return bytes(reply)


def test_a_human_reply_is_matched_by_its_plus_address_and_its_in_reply_to() -> None:
    original = built()
    mail = classify(RawMail("1", reply_bytes(original)))
    assert mail.classification == "human"
    assert mail.tokens[0] == TOKEN
    assert mail.references == (str(original["Message-ID"]),)
    assert mail.sender == "Jan Peeters"


@pytest.mark.parametrize("header, value", [
    ("Auto-Submitted", "auto-replied"),
    ("Auto-Submitted", "auto-generated"),
    ("Precedence", "bulk"),
    ("Precedence", "junk"),
    ("Precedence", "list"),
    ("Precedence", "auto_reply"),
    ("X-Autoreply", "yes"),
    ("X-Autorespond", "Out of office"),
    ("List-Id", "<crisis.lists.example>"),
    ("Return-Path", "<>"),
])
def test_an_automatic_reply_is_told_apart_by_its_header(header: str, value: str) -> None:
    mail = classify(RawMail("1", reply_bytes(**{header.replace("-", "_"): value})))
    assert mail.classification == "auto-reply"
    assert header in mail.detail


def test_auto_submitted_no_is_a_person() -> None:
    assert auto_reply_reason(parse(reply_bytes(Auto_Submitted="no"))) == ""
    assert classify(RawMail("1", reply_bytes(Auto_Submitted="no"))).classification == "human"


def dsn_bytes(token: str = TOKEN, with_original: bool = True) -> bytes:
    original = bytes(built()).decode()
    headers_only = original.split("\n\n", 1)[0]
    return (
        "From: MAILER-DAEMON@mx.xa-one.example\r\n"
        f"To: ack+{token}@coord.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.xa-one.example>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.xa-one.example\r\n\r\n"
        "Final-Recipient: rfc822; desk@xa-one.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        + ("--B\r\nContent-Type: text/rfc822-headers\r\n\r\n" + headers_only.replace("\n", "\r\n") + "\r\n"
           if with_original else "")
        + "--B--\r\n"
    ).encode()


def test_a_delivery_status_report_is_a_bounce_with_its_recipient_and_status() -> None:
    mail = classify(RawMail("1", dsn_bytes()))
    assert mail.classification == "bounce"
    assert "desk@xa-one.example" in mail.detail and "5.1.1" in mail.detail
    assert mail.tokens == (TOKEN,)
    assert mail.references and mail.references[0].startswith("<ping-7.")


def test_a_bounce_without_the_plus_address_is_found_through_the_returned_headers() -> None:
    raw = dsn_bytes().replace(f"To: ack+{TOKEN}@coord.example".encode(), b"To: ack@coord.example")
    mail = classify(RawMail("1", raw))
    assert mail.classification == "bounce"
    assert mail.references[0].startswith("<ping-7.")


def test_mail_with_no_token_and_no_reference_is_unmatched() -> None:
    raw = b"From: someone@elsewhere.example\r\nTo: ack@coord.example\r\nSubject: Hello\r\n\r\nJust saying hi.\r\n"
    mail = classify(RawMail("1", raw))
    assert mail.classification == "unmatched"
    assert mail.message_key.startswith("sha256:")  # no Message-ID: a digest of the bytes


def test_the_token_in_a_quoted_link_is_found_when_the_reply_lost_its_headers() -> None:
    raw = (f"From: jan@xa-one.example\r\nTo: ack@coord.example\r\nSubject: Re: test\r\n\r\n"
           f"OK\r\n> http://127.0.0.1:8080/ack/{TOKEN}\r\n").encode()
    mail = classify(RawMail("1", raw))
    assert mail.classification == "human" and mail.tokens == (TOKEN,)


def test_a_plus_address_folded_to_lower_case_is_noticed() -> None:
    raw = (f"From: jan@xa-one.example\r\nTo: ack+{TOKEN.lower()}@coord.example\r\nSubject: Re\r\n\r\nOK\r\n").encode()
    mail = classify(RawMail("1", raw))
    assert mail.folded_tokens == (TOKEN.lower(),)


def test_our_own_ping_seen_in_the_mailbox_never_acknowledges_itself() -> None:
    mail = classify(RawMail("1", bytes(built())))
    assert (mail.classification, mail.tokens, mail.references) == ("unmatched", (), ())
    assert mail.detail == "our own ping, not a reply"


# -- hostile messages (issue 9): found by tests/fuzz, kept here as fast regressions ------------

def test_a_message_whose_header_crashes_pythons_parser_is_still_classified() -> None:
    # email's structured header parser raises IndexError on this From: it once stopped the reader.
    mail = classify(RawMail("9", b"From: 0@\r\nTo: ack+" + TOKEN.encode() + b"@coord.example\r\n\r\nok\r\n"))
    assert mail.classification == "human"
    assert mail.tokens == (TOKEN,)


def test_a_message_nobody_can_read_is_unmatched_not_an_exception() -> None:
    for data in (b"\x00\xff\xfe" * 100, b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--", b""):
        assert classify(RawMail("9", data)).classification == "unmatched"


@pytest.mark.parametrize(
    ("kw", "reply"),
    [({"subject": "line one\nBcc: everyone@example.org"}, "ack@coord.example"),
     ({"address": "desk@xa-one.example\r\nBcc: x@y"}, "ack@coord.example"),
     ({"address": ":;0"}, "ack@coord.example"),
     ({}, "no-at-sign")],
    ids=["newline-in-subject", "newline-in-address", "an-empty-group-as-address", "reply-address-without-at"],
)
def test_a_ping_whose_values_cannot_make_an_email_is_a_permanent_channel_error(kw: dict[str, str], reply: str) -> None:
    from commtest.errors import ChannelError

    with pytest.raises(ChannelError) as err:
        build_message(outgoing(**kw), mail_from="commtest@coord.example", reply_address=reply, clock=CLOCK)
    assert err.value.permanent
