"""Acknowledgement by link: what the web app's ack pages know of a ping.

``lookup_token`` reads (the GET page changes nothing). The POST is recorded by
``scheduler.ack_group`` (``acknowledge_token`` alone, the web app's writer a group at a time)
in one durable transaction, so an acknowledgement whose HTTP request got a 2xx survives a
power cut; ``outcome_of`` turns what was recorded into what the page says.
"""
from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, Mapping, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channels.email.message import TOKEN_RE
from commtest.db import read_connection
from commtest.models import ContactPoint, Organisation, Ping, TestRun
from commtest.point_read import PointRead
from scheduler import records

# after_close: the run had completed (or was aborted: ``run_status`` says which); the
# answer is kept as an event and changes nothing.
# check: the page must look at this ping before it may be answered by link (its channel is one
# of PAGE_CHECKED_CHANNELS); nothing was written.
AckStatus = Literal["acked", "already", "expired", "unknown", "malformed", "after_close", "check"]
ACTOR = "web"
# A video ping is answered by joining its room; its link page decides whether the form applies.
PAGE_CHECKED_CHANNELS = ("video",)


def is_well_formed(token: str) -> bool:
    """Exactly what ``secrets.token_urlsafe(32)`` makes: 43 characters of A-Z a-z 0-9 - _."""
    return bool(TOKEN_RE.fullmatch(token or ""))


class TokenInfo(NamedTuple):
    """What the confirm page shows about a ping (read only).

    A named tuple, not a frozen dataclass: as immutable, made in a quarter of the time and
    pickled in half (one is made for every page and every answer, and answers cross from the
    writer process to the pages)."""

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
    organisation_names: Mapping[str, str] = MappingProxyType({})  # the name in other languages

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


class AckOutcome(NamedTuple):
    """What recording an answer did, and what its page shows (a named tuple, as ``TokenInfo``)."""

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
    info: TokenInfo | None = None  # what the ping's page shows, read when the answer was recorded


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
    with read_connection(engine) as conn:
        r = conn.execute(_LOOKUP_BY_TOKEN, {"token_hash": records.token_hash(token)}).first()
    return None if r is None else token_info_of(r)


# The lookup with its columns named and ordered as TokenInfo's fields, for ``token_reader``: a
# row read is a TokenInfo as it is (making one from a row was a tenth of a page's read). The
# zone is the contact point's, else its organisation's, as ``token_info_of`` picks it.
_PAGE_BY_TOKEN = (
    sa.select(_P.c.id.label("ping_id"), _P.c.run_id, _P.c.token_hash, _P.c.channel, _P.c.language,
              sa.func.coalesce(sa.func.nullif(_CP.c.timezone, sa.literal_column("''")), _ORG.c.timezone).label("timezone"),
              _ORG.c.code.label("organisation_code"), _ORG.c.name.label("organisation_name"),
              _CP.c.name.label("contact_name"), _P.c.sent_at, _P.c.deadline_at, _P.c.token_expires_at.label("expires_at"),
              _P.c.acked_at, _CP.c.languages.label("contact_languages"),
              _ORG.c.languages.label("organisation_languages"), _RUN.c.status.label("run_status"),
              _RUN.c.finished_at.label("run_finished_at"), _ORG.c.names.label("organisation_names"))
    .join(_CP, _CP.c.id == _P.c.contact_point_id)
    .join(_ORG, _ORG.c.id == _CP.c.organisation_id)
    .join(_RUN, _RUN.c.id == _P.c.run_id)
    .where(_P.c.token_hash == sa.bindparam("token_hash"))
)
if tuple(_PAGE_BY_TOKEN.selected_columns.keys()) != TokenInfo._fields:  # a field added to one and not the other
    raise RuntimeError("scheduler.acks: _PAGE_BY_TOKEN's columns must be TokenInfo's fields, in order")


def _languages(value: Any) -> tuple[str, ...]:
    return tuple(value or ())


def _names(value: Any) -> Mapping[str, str]:
    # Read-only: one decoded value is shared by every page that reads it (commtest.point_read).
    return MappingProxyType(dict(value or {}))


def token_reader(engine: Engine) -> PointRead | None:
    """The token lookup as a ``PointRead`` (SQLite files) whose rows are ``TokenInfo``, or None
    where the engine's own read is the way (PostgreSQL, an in-memory database)."""
    try:
        return PointRead(engine, _PAGE_BY_TOKEN, make=TokenInfo._make, then={
            "contact_languages": _languages, "organisation_languages": _languages, "organisation_names": _names})
    except ValueError:
        return None


def token_info_of(r: Any) -> TokenInfo:
    """What a page needs to know of a ping, from one row (attributes named as the columns of
    ``_LOOKUP_BY_TOKEN``: a Core row, a ``PointRead`` or ``Prepared`` row). The JSON values are
    copied: a page may not change what the next page reads."""
    return TokenInfo(
        r.id, r.run_id, r.token_hash or "", r.channel, r.language, r.cp_zone or r.org_zone, r.org_code,
        r.org_name, r.cp_name, r.sent_at, r.deadline_at, r.token_expires_at, r.acked_at,
        tuple(r.cp_languages or ()), tuple(r.org_languages or ()), r.run_status, r.run_finished_at,
        dict(r.org_names or {}),
    )


def outcome_of(result: records.AckResult | None, known: TokenInfo) -> AckOutcome:
    """The outcome of an answer recorded on the ping ``known`` describes (``None``: it had expired)."""
    names = dict(language=known.language, organisation_name=known.organisation_name,
                 contact_name=known.contact_name, timezone=known.timezone, info=known)
    if result is None:
        return AckOutcome("expired", known.ping_id, known.run_id, **names)  # type: ignore[arg-type]
    # not_sent (nothing was sent on this ping to answer) reads as an answer already given.
    status: AckStatus = {"acked": "acked", "after_close": "after_close"}.get(result.status, "already")  # type: ignore[assignment]
    return AckOutcome(status, result.ping_id, result.run_id, result.response_ms, result.late, result.suspicious,
                      acked_at=result.acked_at, run_status=result.run_status,
                      run_finished_at=known.run_finished_at, **names)  # type: ignore[arg-type]
