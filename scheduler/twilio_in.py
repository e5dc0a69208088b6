"""What Twilio's webhooks tell us, applied to the pings (the web app's ``/hooks/twilio``
calls these in its thread pool; each is one durable transaction through
``scheduler.reports_in.apply_report``, retried on a lost race).

Replays and duplicates change nothing: every state change is a conditional write, an
acknowledgement is recorded once, ``ping.answered`` once per ping, and a refused reply once
per Twilio MessageSid. A report whose Call or Message SID is not its ping's (a URL copied
from another call) changes nothing either.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from channels.base import ChannelReport
from channels.sms.replies import InboundSms
from commtest import events as ev
from commtest.clock import Clock
from commtest.db import run_write
from commtest.masking import mask_address
from commtest.models import EndpointStatus, Event, Ping, PingState
from commtest.settings import Settings
from scheduler import records
from scheduler.endpoint_flags import unblock_number
from scheduler.reports_in import apply_report

__all__ = ["KeypressOutcome", "SmsReplyOutcome", "acknowledge_keypress", "apply_call_reports", "apply_sms_reply"]

log = logging.getLogger(__name__)

PING_REPLY_REFUSED = ev.PING_REPLY_REFUSED
# Pings an SMS reply may answer: the latest few sent to that number (acknowledged ones too,
# so that a second reply is thanked instead of being called a wrong code).
_REPLY_STATES = (*records.ANSWERABLE, PingState.acked.value)
_CANDIDATES = 20


def _matching(s: Session, report: ChannelReport) -> Ping | None:
    """The report's ping, if the SID Twilio gives is the one we stored (or none is stored yet:
    a callback can beat the engine's own record of the send)."""
    ping = s.get(Ping, report.ping_id) if report.ping_id is not None else None
    if ping is None:
        return None
    if ping.provider_ref and report.provider_ref and ping.provider_ref != report.provider_ref:
        log.warning("webhook for ping %s names %s, not its %s: ignored", ping.id, report.provider_ref, ping.provider_ref)
        return None
    return ping


def _seen_answered(s: Session, ping_id: int) -> bool:
    return s.exec(select(Event.id).where(Event.ping_id == ping_id, Event.kind == ev.PING_ANSWERED).limit(1)).first() \
        is not None


def apply_call_reports(engine: Engine, settings: Settings, clock: Clock, reports: Sequence[ChannelReport],
                       actor: str) -> int:
    """Status, answering-machine and delivery reports of calls and SMS; returns how many
    matched a ping (the rest changed nothing)."""
    ordered = sorted(reports, key=lambda r: r.at)

    def work(s: Session) -> int:
        now = clock.now()
        applied = 0
        for report in ordered:
            ping = _matching(s, report)
            if ping is None:
                continue
            if report.kind == "answered" and _seen_answered(s, ping.id or 0):
                continue
            apply_report(s, report, settings, actor, now)
            applied += 1
        return applied

    return run_write(engine, work, durable=True)


@dataclass(frozen=True)
class KeypressOutcome:
    status: str  # acked | already | closed | unknown


def acknowledge_keypress(engine: Engine, settings: Settings, clock: Clock, ping_id: int, call_sid: str,
                         actor: str) -> KeypressOutcome:
    """The officer pressed 1 on the call of ``ping_id``."""
    def work(s: Session) -> KeypressOutcome:
        now = clock.now()
        report = ChannelReport("acked", now, ping_id=ping_id, provider_ref=call_sid or None, method="keypress")
        if _matching(s, report) is None:
            return KeypressOutcome("unknown")
        result = apply_report(s, report, settings, actor, now)
        if result is None or result.status == "not_sent":
            return KeypressOutcome("unknown")
        return KeypressOutcome({"acked": "acked", "after_close": "closed"}.get(result.status, "already"))

    return run_write(engine, work, durable=True)


@dataclass(frozen=True)
class SmsReplyOutcome:
    # acked | already | closed | wrong_code | blocked | opted_in | keyword | unknown_sender
    status: str
    language: str
    ping_id: int | None = None


def apply_sms_reply(engine: Engine, settings: Settings, clock: Clock, sms: InboundSms, actor: str) -> SmsReplyOutcome:
    """An SMS from an officer's number: the reply code acknowledges the ping that carried it;
    a wrong code is kept as an event (once per message) and answered politely; STOP blocks the
    number's endpoint, START (UNSTOP, YES) makes it active again."""
    if sms.opt_in:
        return _opted_in(engine, settings, clock, sms, actor)
    if sms.keyword:
        return SmsReplyOutcome("keyword", settings.default_language)

    def work(s: Session) -> SmsReplyOutcome:
        now = clock.now()
        candidates = list(s.exec(
            select(Ping).where(Ping.channel == "sms", Ping.address == sms.sender, col(Ping.ack_code).is_not(None),
                               col(Ping.state).in_(_REPLY_STATES))
            .order_by(col(Ping.id).desc()).limit(_CANDIDATES)
        ).all())
        if not candidates:
            return SmsReplyOutcome("unknown_sender", settings.default_language)
        latest = candidates[0]
        if sms.opt_out:
            return _blocked(s, latest, now, settings, actor, sms)
        match = next((p for p in candidates if p.ack_code in sms.codes), None)
        if match is None:
            _refused(s, latest, now, actor, sms)
            return SmsReplyOutcome("wrong_code", latest.language, latest.id)
        report = ChannelReport("acked", now, ping_id=match.id, method="sms-reply", by=mask_address(sms.sender),
                               extra={"message_sid": sms.message_sid[:64]})
        result = apply_report(s, report, settings, actor, now)
        status = "already" if result is None else {"acked": "acked", "after_close": "closed",
                                                   "not_sent": "wrong_code"}.get(result.status, "already")
        return SmsReplyOutcome(status, match.language, match.id)

    return run_write(engine, work, durable=True)


def _blocked(s: Session, ping: Ping, now: datetime, settings: Settings, actor: str,
             sms: InboundSms) -> SmsReplyOutcome:
    reason = f"{mask_address(sms.sender)} replied STOP: Twilio refuses further SMS to it until it sends START"
    before = ping.state
    apply_report(s, ChannelReport("blocked", now, ping_id=ping.id, detail=reason), settings, actor, now)
    if before not in records.AWAITING_ACK:
        # The attempt had ended already: the directory still learns that the number blocks us.
        records.flag_endpoint(s, ping, EndpointStatus.blocked, now, actor, reason)
    return SmsReplyOutcome("blocked", ping.language, ping.id)


def _opted_in(engine: Engine, settings: Settings, clock: Clock, sms: InboundSms, actor: str) -> SmsReplyOutcome:
    """Twilio sends our SMS to the number again (and answers the START itself): so may we."""
    reason = f"{mask_address(sms.sender)} sent {sms.body.strip().upper()[:12]}: Twilio delivers our SMS to it again"

    def work(s: Session) -> int:
        return unblock_number(s, "sms", sms.sender, clock.now(), actor, reason)

    if sms.sender:
        run_write(engine, work, durable=True)
    return SmsReplyOutcome("opted_in", settings.default_language)


def _refused(s: Session, ping: Ping, now: datetime, actor: str, sms: InboundSms) -> None:
    """A wrong code is evidence too (someone answered, with the wrong code): one event per message."""
    sid = sms.message_sid[:64]
    earlier = s.exec(select(Event).where(Event.ping_id == ping.id, Event.kind == PING_REPLY_REFUSED)
                     .order_by(col(Event.id))).all()
    if any(e.data.get("message_sid") == sid for e in earlier):
        return
    records.ping_event(s, ping, PING_REPLY_REFUSED, now, actor, reason="the SMS reply did not carry this ping's code",
                       message_sid=sid, sender=mask_address(sms.sender))
