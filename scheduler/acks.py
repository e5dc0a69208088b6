"""Acknowledgement by link: what the web app's ack pages call (its only database writer).

``lookup_token`` reads (the GET page changes nothing); ``acknowledge_token`` records the
POST in one durable transaction through ``records.acknowledge``, so an acknowledgement
whose HTTP request got a 2xx survives a power cut.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from channels.email.message import TOKEN_RE
from commtest.clock import Clock
from commtest.db import read_session, run_write
from commtest.models import ContactPoint, Organisation, Ping, TestRun
from commtest.settings import Settings
from scheduler import records

# after_close: the run had completed (or was aborted: ``run_status`` says which); the
# answer is kept as an event and changes nothing.
AckStatus = Literal["acked", "already", "expired", "unknown", "malformed", "after_close"]
ACTOR = "web"


def is_well_formed(token: str) -> bool:
    """Exactly what ``secrets.token_urlsafe(32)`` makes: 43 characters of A-Z a-z 0-9 - _."""
    return bool(TOKEN_RE.fullmatch(token or ""))


@dataclass(frozen=True)
class TokenInfo:
    """What the confirm page shows about a ping (read only)."""

    ping_id: int
    run_id: int
    token_hash: str
    channel: str
    language: str
    timezone: str
    organisation_code: str
    organisation_name: str
    contact_name: str
    sent_at: datetime | None
    deadline_at: datetime | None
    expires_at: datetime | None
    acked_at: datetime | None
    contact_languages: tuple[str, ...] = ()  # the contact point's, preferred first
    organisation_languages: tuple[str, ...] = ()
    run_status: str = "running"
    run_finished_at: datetime | None = None

    @property
    def run_closed(self) -> bool:
        return self.run_status in records.CLOSED_RUN

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now > self.expires_at

    def preferred_languages(self) -> tuple[str, ...]:
        """The ping's language, then the contact point's, then its organisation's: the
        order in which the ack page looks for a language it has."""
        return (self.language, *self.contact_languages, *self.organisation_languages)


@dataclass(frozen=True)
class AckOutcome:
    status: AckStatus
    ping_id: int | None = None
    run_id: int | None = None
    response_ms: int | None = None
    late: bool = False
    suspicious: bool = False  # never shown to the officer; `runs show` and reports show it
    language: str | None = None
    organisation_name: str | None = None
    contact_name: str | None = None
    acked_at: datetime | None = None
    timezone: str | None = None
    run_status: str = "running"
    run_finished_at: datetime | None = None


def _info(s: Session, ping: Ping) -> TokenInfo:
    cp, org, run = s.exec(
        select(ContactPoint, Organisation, TestRun)
        .join(Organisation, col(Organisation.id) == col(ContactPoint.organisation_id))
        .join(TestRun, col(TestRun.id) == ping.run_id)
        .where(ContactPoint.id == ping.contact_point_id)
    ).one()
    return TokenInfo(
        ping_id=ping.id or 0, run_id=ping.run_id, token_hash=ping.token_hash or "", channel=ping.channel,
        language=ping.language, timezone=cp.timezone or org.timezone, organisation_code=org.code,
        organisation_name=org.name, contact_name=cp.name, sent_at=ping.sent_at, deadline_at=ping.deadline_at,
        expires_at=ping.token_expires_at, acked_at=ping.acked_at,
        contact_languages=tuple(cp.languages or ()), organisation_languages=tuple(org.languages or ()),
        run_status=run.status, run_finished_at=run.finished_at,
    )


def lookup_token(engine: Engine, token: str) -> TokenInfo | None:
    """The ping behind ``token``, or None when the token is malformed or unknown. Changes nothing."""
    if not is_well_formed(token):
        return None
    with read_session(engine) as s:
        ping = records.find_ping(s, token=token)
        return _info(s, ping) if ping is not None else None


def acknowledge_token(
    engine: Engine,
    clock: Clock,
    settings: Settings,
    token: str,
    *,
    method: str,
    by: str | None,
    user_agent: str | None,
    source: str | None,
    info: TokenInfo | None = None,
) -> AckOutcome:
    """Record the answer behind ``token`` in one short durable transaction: the ping is found
    and locked by its token in one statement, then a conditional update and its events.
    ``info`` is what ``lookup_token`` already read for the page (names, language), so the
    write transaction reads nothing more."""
    if not is_well_formed(token):
        return AckOutcome("malformed")
    digest = records.token_hash(token)

    def work(s: Session) -> AckOutcome:
        now = clock.now()  # read inside the transaction: a retried one judges its own moment
        row = records.locked_answer_row(s.connection(), records.PT.c.token_hash == digest)
        if row is None:
            return AckOutcome("unknown")
        known = info if info is not None and info.ping_id == row.id else _info(s, s.get(Ping, row.id))  # type: ignore[arg-type]
        names = dict(language=known.language, organisation_name=known.organisation_name,
                     contact_name=known.contact_name, timezone=known.timezone)
        closed = row.run_status in records.CLOSED_RUN
        if row.acked_at is None and known.expired(now) and not closed:
            return AckOutcome("expired", row.id, row.run_id, **names)  # type: ignore[arg-type]
        result = records.acknowledge_row(
            s, row, now, method=method, actor=ACTOR, by=(by or "").strip() or None, user_agent=user_agent,
            source=source, suspicious_within=timedelta(seconds=settings.ack_suspicious_seconds),
        )
        status: AckStatus = {"acked": "acked", "after_close": "after_close"}.get(result.status, "already")  # type: ignore[assignment]
        return AckOutcome(status, result.ping_id, result.run_id, result.response_ms, result.late, result.suspicious,
                          acked_at=result.acked_at, run_status=result.run_status,
                          run_finished_at=known.run_finished_at, **names)  # type: ignore[arg-type]

    return run_write(engine, work, durable=True)
