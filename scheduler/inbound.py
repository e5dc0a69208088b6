"""Record what came back to the reply mailbox: the mail reader's only database writer.

Each message is recorded once (``InboundMessage.message_key``: the same reply delivered
twice, or fetched again after a restart, counts once) and applied to its ping in the
same durable transaction, through the run engine's own report logic so that an
out-of-office reply or a bounce escalates exactly as a provider's report would.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, select

from channels.base import ChannelReport, ReportKind
from channels.email.inbound import InboundMail, InboundSource, RawMail, classify
from commtest.clock import Clock
from commtest.db import run_write
from commtest.errors import ChannelError
from commtest.masking import mask_address, mask_in_text
from commtest.models import InboundMessage, Ping
from commtest.settings import Settings
from scheduler import records
from scheduler.reports_in import apply_report

log = logging.getLogger(__name__)

ACTOR = "imap"
_REPORT: dict[str, ReportKind] = {"human": "acked", "auto-reply": "away", "bounce": "bounced"}


@dataclass(frozen=True)
class InboundResult:
    message_key: str
    classification: str  # human | auto-reply | bounce | unmatched
    status: str  # recorded | duplicate
    ping_id: int | None = None
    outcome: str | None = None  # acked | already | away | bounced | ignored (ping already settled)
    detail: str = ""


def record_inbound(engine: Engine, clock: Clock, settings: Settings, mails: list[InboundMail]) -> list[InboundResult]:
    """Record and apply each message once; one durable transaction per message."""
    out = []
    for mail in mails:
        try:
            out.append(run_write(engine, lambda s, m=mail: _record_one(s, clock, settings, m), durable=True))
        except IntegrityError:
            # Another reader recorded the same message between our check and our commit.
            out.append(InboundResult(mail.message_key, mail.classification, "duplicate"))
    return out


def _record_one(s: Session, clock: Clock, settings: Settings, mail: InboundMail) -> InboundResult:
    now = clock.now()
    # One transaction: the message and its effect are recorded together.
    seen = s.exec(select(InboundMessage).where(InboundMessage.message_key == mail.message_key)).first()
    if seen is not None:
        return InboundResult(mail.message_key, seen.classification, "duplicate", seen.ping_id)
    ping = _find(s, mail)
    classification = mail.classification if ping is not None else "unmatched"
    # A bounce quotes the address it could not reach: masked like every other log line.
    detail = mask_in_text(mail.detail)
    if ping is None and mail.classification != "unmatched":
        detail = f"{mail.classification} matching no ping"
        if mail.folded_tokens:
            detail += " (the plus-address came back in lower case: a server folded it)"
    s.add(InboundMessage(
        message_key=mail.message_key, mailbox=mail.mailbox[:200], uid=mail.uid[:64] or None,
        received_at=mail.received_at or now, ping_id=ping.id if ping else None, classification=classification,
        summary=f"from {mask_address(mail.sender_address)}: {mail.subject} — {detail}"[:500],
    ))
    outcome = None
    if ping is not None:
        outcome = _apply(s, settings, ping, mail, now)
    log.info("inbound %s ping=%s outcome=%s %s", classification, ping.id if ping else "-", outcome or "-", detail)
    return InboundResult(mail.message_key, classification, "recorded", ping.id if ping else None, outcome, detail)


def _find(s: Session, mail: InboundMail) -> Ping | None:
    for token in mail.tokens:
        ping = records.find_ping(s, token=token)
        if ping is not None:
            return ping
    for ref in mail.references:
        ping = records.find_ping(s, provider_ref=ref)
        if ping is not None:
            return ping
    return None


def _apply(s: Session, settings: Settings, ping: Ping, mail: InboundMail, now: datetime) -> str:
    # The server's receipt time, when the source knows it, measures the response best;
    # never before the ping left nor after now.
    at = min(mail.received_at or now, now)
    if ping.sent_at is not None:
        at = max(at, ping.sent_at)
    kind = _REPORT[mail.classification]
    before = ping.state
    report = ChannelReport(kind=kind, at=at, ping_id=ping.id, method="email-reply" if kind == "acked" else None,
                           by=mail.sender or mail.sender_address or None, detail=mail.detail or kind)
    # The engine's own report logic (acknowledge, or settle and escalate), in our transaction.
    result = apply_report(s, report, settings, ACTOR, now)
    if kind == "acked":
        return str(result.status) if result is not None else "ignored"
    return kind if before in records.AWAITING_ACK else "ignored"


def process_source(engine: Engine, clock: Clock, settings: Settings, source: InboundSource) -> list[InboundResult]:
    """Fetch what is new in ``source`` (an ``ImapSource`` or ``MaildirSource``), record it,
    then flag it processed. Recording first: a crash in between only means fetching the
    message again, which ``InboundMessage`` then counts as a duplicate."""
    raws: list[RawMail] = source.fetch_new()
    if not raws:
        return []
    results = record_inbound(engine, clock, settings, [classify(r) for r in raws])
    for raw in raws:
        source.mark_processed(raw.uid)
    return results


def serve_inbound(engine: Engine, clock: Clock, settings: Settings, source: InboundSource, stop: threading.Event) -> None:
    """The reader loop for ``commtest daemon``: IDLE where the source offers it, else poll
    every ``imap_poll_seconds``. Errors of the mailbox and of the database are logged and
    retried: a message is flagged processed only once it is recorded, so one that could not
    be recorded is read again (and counted once) when the database is back."""
    while not stop.is_set():
        try:
            process_source(engine, clock, settings, source)
            if source.supports_idle:
                source.wait(settings.imap_poll_seconds)
            else:
                stop.wait(settings.imap_poll_seconds)
        except ChannelError as exc:
            log.warning("mail reader: %s; retrying in %.0fs", exc.message, settings.imap_poll_seconds)
            stop.wait(settings.imap_poll_seconds)
        except SQLAlchemyError as exc:
            # The database is away (a restart, a failover). Before the fault suite, this ended
            # the reader's thread silently: no reply was read again until the daemon restarted.
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:300]
            log.warning("mail reader: the database failed (%s); retrying in %.0fs", reason, settings.imap_poll_seconds)
            stop.wait(settings.imap_poll_seconds)
