"""What Twilio's SMS webhooks say: delivery status, and an officer's reply.

A reply acknowledges when it carries the ping's reply code (six digits, spaces allowed:
"123 456", "ok 123456") and comes from the endpoint's number; ``STOP`` and Twilio's other
opt-out words (or ``OptOutType=STOP`` with Advanced Opt-Out) block the number: Twilio then
refuses every further SMS to it (error 21610) until the officer sends START (or UNSTOP, YES),
which makes the number's endpoint active again.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from channels.base import ChannelReport
from channels.twilio.errors import BLOCKED, INVALID_NUMBER
from commtest.i18n import Texts

__all__ = ["InboundSms", "OPT_IN_WORDS", "OPT_OUT_WORDS", "codes_in", "inbound_sms", "message_status_report", "reply_text"]

# Twilio's default opt-out keywords (Messaging > Opt-out management), and the opt-in and help
# keywords Twilio answers itself: none of them is a reply to our message.
OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
OPT_IN_WORDS = frozenset({"START", "YES", "UNSTOP"})
KEYWORDS = frozenset({*OPT_IN_WORDS, "HELP", "INFO"})
_DIGITS = re.compile(r"\d+")
MAX_BODY = 1600


@dataclass(frozen=True)
class InboundSms:
    message_sid: str
    account_sid: str
    sender: str  # the officer's number (E.164)
    to: str  # our number
    body: str
    opt_out: bool
    keyword: bool = False  # START, HELP...: Twilio answers it; it is not a reply to a ping
    opt_in: bool = False  # START, UNSTOP, YES: Twilio sends our messages to the number again

    @property
    def codes(self) -> tuple[str, ...]:
        return codes_in(self.body)


def codes_in(body: str) -> tuple[str, ...]:
    """Every way the body may carry a code: each group of digits, and all its digits together."""
    groups = _DIGITS.findall(body[:MAX_BODY])
    joined = "".join(groups)
    return tuple(dict.fromkeys([*groups, joined] if joined else groups))


def inbound_sms(form: Mapping[str, str]) -> InboundSms:
    body = form.get("Body", "")[:MAX_BODY]
    words = body.strip().upper().split()
    opt_out = form.get("OptOutType", "").upper() == "STOP" or (len(words) == 1 and words[0] in OPT_OUT_WORDS)
    keyword = form.get("OptOutType", "").upper() in ("START", "HELP") or (len(words) == 1 and words[0] in KEYWORDS)
    opt_in = form.get("OptOutType", "").upper() == "START" or (len(words) == 1 and words[0] in OPT_IN_WORDS)
    return InboundSms(message_sid=form.get("MessageSid") or form.get("SmsSid", ""),
                      account_sid=form.get("AccountSid", ""), sender=form.get("From", ""), to=form.get("To", ""),
                      body=body, opt_out=opt_out, keyword=keyword and not opt_out, opt_in=opt_in and not opt_out)


def message_status_report(form: Mapping[str, str], ping_id: int, now: datetime) -> ChannelReport | None:
    status = form.get("MessageStatus") or form.get("SmsStatus", "")
    sid = form.get("MessageSid") or form.get("SmsSid") or None
    common = {"ping_id": ping_id, "provider_ref": sid, "extra": {"message_status": status[:32]}}
    if status == "delivered":
        return ChannelReport("delivered", now, **common)  # type: ignore[arg-type]
    if status not in ("undelivered", "failed"):
        return None  # queued, sending, sent, accepted, scheduled: still on its way
    raw = form.get("ErrorCode", "")
    code = int(raw) if raw.isdigit() else None
    if code in BLOCKED:
        return ChannelReport("blocked", now, detail=BLOCKED[code], **common)  # type: ignore[arg-type]
    if code in INVALID_NUMBER:
        return ChannelReport("failed", now, permanent=True, detail=f"{INVALID_NUMBER[code]} (error {code})",
                             **common)  # type: ignore[arg-type]
    detail = f"the SMS was {status}" + (f" (Twilio error {code})" if code else "")
    return ChannelReport("failed", now, detail=detail, **common)  # type: ignore[arg-type]


def reply_text(language: str, outcome: str) -> str | None:
    """What we answer an officer's SMS (officer catalogue); None: no answer (a STOP is answered
    by Twilio itself, a stranger gets nothing)."""
    t = Texts("officer", language)
    if outcome == "acked":
        return t("Thank you, your confirmation has been recorded.")
    if outcome == "already":
        return t("Thank you, your confirmation had already been recorded.")
    if outcome == "closed":
        return t("Thank you. This test has already closed, but your answer has been noted.")
    if outcome == "wrong_code":
        return t("Sorry, this code does not match our message. Please reply with the code it contains.")
    return None


def append_code(body: str, code: str, language: str) -> str:
    """The message with its reply code: a template that forgot ``{{ ack_code }}`` still works."""
    if code in body:
        return body
    t = Texts("officer", language)
    reply = t("Reply %(code)s to confirm.", code=code)
    return f"{body}\n{reply}"
