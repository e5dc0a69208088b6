"""Acknowledgement by link: what the web app's ack pages call (its only database writer).

``lookup_token`` reads (the GET page changes nothing); ``acknowledge_token`` records the
POST in one durable transaction through ``records.acknowledge``, so an acknowledgement
whose HTTP request got a 2xx survives a power cut.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from channels.email.message import TOKEN_RE
from commtest.clock import Clock
from commtest.db import run_write
from commtest.models import ContactPoint, Organisation, Ping, TestRun
from commtest.point_read import PointRead
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
    organisation_names: dict[str, str] = field(default_factory=dict)  # the name in other languages

    def organisation_in(self, language: str) -> str:
        """The organisation's name as the page's reader reads it (the directory's ``names``)."""
        names = self.organisation_names or {}
        return names.get(language) or names.get(language.split("-")[0]) or self.organisation_name

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
        run_status=run.status, run_finished_at=run.finished_at, organisation_names=dict(org.names or {}),
    )


_P = Ping.__table__  # type: ignore[attr-defined]
_CP = ContactPoint.__table__  # type: ignore[attr-defined]
_ORG = Organisation.__table__  # type: ignore[attr-defined]
_RUN = TestRun.__table__  # type: ignore[attr-defined]
_LOOKUP = (
    sa.select(_P.c.id, _P.c.run_id, _P.c.token_hash, _P.c.channel, _P.c.language, _P.c.sent_at, _P.c.deadline_at,
              _P.c.token_expires_at, _P.c.acked_at, _CP.c.timezone.label("cp_zone"), _CP.c.name.label("cp_name"),
              _CP.c.languages.label("cp_languages"), _ORG.c.code.label("org_code"), _ORG.c.name.label("org_name"),
              _ORG.c.timezone.label("org_zone"), _ORG.c.languages.label("org_languages"),
              _ORG.c.names.label("org_names"),
              _RUN.c.status.label("run_status"), _RUN.c.finished_at.label("run_finished_at"))
    .join(_CP, _CP.c.id == _P.c.contact_point_id)
    .join(_ORG, _ORG.c.id == _CP.c.organisation_id)
    .join(_RUN, _RUN.c.id == _P.c.run_id)
)


_LOOKUP_BY_TOKEN = _LOOKUP.where(_P.c.token_hash == sa.bindparam("token_hash"))  # built once, compiled once


def lookup_token(engine: Engine, token: str) -> TokenInfo | None:
    """The ping behind ``token``, or None when the token is malformed or unknown. Changes
    nothing: one read (a deferred snapshot), one indexed query."""
    if not is_well_formed(token):
        return None
    with engine.connect() as conn:
        r = conn.execute(_LOOKUP_BY_TOKEN, {"token_hash": records.token_hash(token)}).first()
    return None if r is None else token_info_of(r._mapping)


def token_reader(engine: Engine) -> PointRead | None:
    """The token lookup as a ``PointRead`` (SQLite files), or None where the engine's own
    read is the way (PostgreSQL, an in-memory database)."""
    try:
        return PointRead(engine, _LOOKUP_BY_TOKEN)
    except ValueError:
        return None


def token_info_of(r: Mapping[str, Any]) -> TokenInfo:
    """What a page needs to know of a ping, from one row of ``_LOOKUP_BY_TOKEN``."""
    return TokenInfo(
        ping_id=r["id"], run_id=r["run_id"], token_hash=r["token_hash"] or "", channel=r["channel"],
        language=r["language"], timezone=r["cp_zone"] or r["org_zone"], organisation_code=r["org_code"],
        organisation_name=r["org_name"], contact_name=r["cp_name"], sent_at=r["sent_at"],
        deadline_at=r["deadline_at"], expires_at=r["token_expires_at"], acked_at=r["acked_at"],
        contact_languages=tuple(r["cp_languages"] or ()), organisation_languages=tuple(r["org_languages"] or ()),
        run_status=r["run_status"], run_finished_at=r["run_finished_at"],
        organisation_names=dict(r["org_names"] or {}),
    )


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
    """Record the answer behind ``token`` in one short durable transaction of its own (the web
    app groups them: scheduler.ack_writer)."""
    if not is_well_formed(token):
        return AckOutcome("malformed")
    return run_write(engine, lambda s: record_answer(s, clock, settings, token, method=method, by=by,
                                                     user_agent=user_agent, source=source, info=info), durable=True)


def record_answer(
    s: Session,
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
    """Record the answer behind ``token`` in the caller's durable transaction: the ping is found
    and locked by its token in one statement, then a conditional update and its events.
    ``info`` is what ``lookup_token`` already read for the page (names, language), so nothing
    more is read."""
    if not is_well_formed(token):
        return AckOutcome("malformed")
    digest = records.token_hash(token)
    now = clock.now()  # read inside the transaction: a retried one judges its own moment
    row = records.locked_answer_row(s.connection(), records.BY_TOKEN, {"token_hash": digest})
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
