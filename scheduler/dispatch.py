"""Claiming pings for dispatch: ``pending`` → ``dispatching``, with a fresh token and the
rendered message, in the caller's transaction.

One attempt that cannot be prepared (its template fails for this contact point, its
playbook revision no longer reads) fails alone, as ``template_error`` with the message:
it never blocks the other attempts of the batch, nor the next tick.
"""
from __future__ import annotations

import functools
import json
import logging
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType, SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from channels.base import SPOKEN_KINDS, AlternativeText, OutgoingPing
from commtest import events as ev
from commtest.models import (
    ContactPoint,
    Event,
    FieldOfWork,
    Organisation,
    Outcome,
    Ping,
    PingState,
    RunStatus,
    TestRun,
)
from commtest.settings import Settings
from playbooks.schema import PlaybookSpec
from playbooks.templates import RenderedMessage, template_language
from scheduler import records
from scheduler.bulk import among, insert_rows, row_value, update_each
from scheduler.messages import render_ping
from scheduler.planner import usable_endpoints_of
from scheduler.specs import spec_for_revision_id

log = logging.getLogger(__name__)

PT = Ping.__table__  # type: ignore[attr-defined]
RT = TestRun.__table__  # type: ignore[attr-defined]
ET = Event.__table__  # type: ignore[attr-defined]
CP = ContactPoint.__table__  # type: ignore[attr-defined]
ORG = Organisation.__table__  # type: ignore[attr-defined]
FW = FieldOfWork.__table__  # type: ignore[attr-defined]
_NOW = sa.bindparam("b_now", type_=PT.c.dispatching_at.type)  # the batch's instant, in kept statements
_CLAIM_COLUMNS = (PT.c.id, PT.c.run_id, PT.c.contact_point_id, PT.c.organisation_code, PT.c.channel, PT.c.provider,
                  PT.c.address, PT.c.language, PT.c.step, PT.c.attempt)
# The JSON columns come as their text, decoded once per distinct value (_decoded): a wave's
# contact points share a handful of language lists and organisations.
_WHO_COLUMNS = (CP.c.name.label("cp_name"), sa.cast(CP.c.languages, sa.Text()).label("cp_languages"),
                CP.c.timezone.label("cp_timezone"),
                ORG.c.code.label("org_code"), ORG.c.name.label("org_name"), ORG.c.timezone.label("org_timezone"),
                sa.cast(ORG.c.languages, sa.Text()).label("org_languages"), ORG.c.country.label("org_country"),
                sa.cast(ORG.c.names, sa.Text()).label("org_names"),
                FW.c.code.label("field_code"))


@dataclass
class Claimed:
    ping_id: int
    outgoing: OutgoingPing
    ack_deadline_s: float
    provider: str = ""  # the provider the attempt was planned for (the event names it)


@dataclass
class Prepared:
    """Attempts due, their messages rendered, not claimed yet; and those that could not be prepared."""

    ready: list[Claimed]
    failed: list[tuple[int, Exception]]


class DueQueue:
    """The attempts due, in the order they are due, read ``window`` ids at a time; each batch is
    then read by id and its messages rendered, outside any write transaction: the rendering (the
    costly part) never holds the write lock. ``claim`` then takes them.

    Why a window: finding the earliest due attempts orders every due attempt of the running runs
    (a fresh run of 3,000: 6-16 ms on PostgreSQL, each time). Read once per window, a batch costs
    a primary-key read. An attempt planned meanwhile waits at most one window (a few batches);
    one cancelled or claimed meanwhile is skipped (the batch read and ``claim`` check its state).

    A queue serves an attempt once: a batch prepared ahead (scheduler.prepare_process) is read
    while the one before it is still being claimed, and must not be that one again.
    """

    def __init__(self, window: int) -> None:
        self.window = window
        self._ids: deque[int] = deque()
        self._served: set[int] = set()
        self._senders: dict[str, Any] = {}  # the playbook owners' names, read once per queue

    def next_batch(self, conn: sa.Connection, now: datetime, batch: int, settings: Settings) -> Prepared:
        """Up to ``batch`` attempts still due, their messages rendered (empty: nothing is due)."""
        while True:
            if not self._ids:
                self._ids.extend(self._fresh_ids(conn, now, max(self.window, batch)))
                if not self._ids:
                    return Prepared([], [])
            ids = [self._ids.popleft() for _ in range(min(batch, len(self._ids)))]
            self._served.update(ids)
            out = _prepare_ids(conn, ids, now, settings, self._senders)
            if out.ready or out.failed:
                return out


    def _fresh_ids(self, conn: sa.Connection, now: datetime, limit: int) -> list[int]:
        """The first ``limit`` due attempts this queue has not served. (Those served and not
        claimed yet are at most the batch being claimed: a second read, larger, is rare.)"""
        while True:
            due = _due_ids(conn, now, limit)
            fresh = [i for i in due if i not in self._served]
            if fresh or len(due) < limit:
                return fresh
            limit *= 2


def _due_ids(conn: sa.Connection, now: datetime, limit: int) -> list[int]:
    return list(conn.execute(
        sa.select(PT.c.id).join(RT, RT.c.id == PT.c.run_id)
        .where(PT.c.state == PingState.pending.value, PT.c.due_at <= now, RT.c.status == RunStatus.running.value)
        .order_by(PT.c.due_at, PT.c.id).limit(limit)).scalars().all())


def _prepare_ids(conn: sa.Connection, ids: list[int], now: datetime, settings: Settings,
                 senders: dict[str, Any]) -> Prepared:
    """The attempts ``ids`` still pending in a running run, rendered. Two queries whatever the
    batch: the attempts with whom they go to, and their runs."""
    # Found by id, the state checked on the rows found (``IS TRUE``), and the runs read on their
    # own: joined with its run, or with ``state = 'pending'`` left for an index to answer,
    # PostgreSQL reads every pending attempt of the run for each batch.
    rows = conn.execute(
        sa.select(*_CLAIM_COLUMNS, *_WHO_COLUMNS)
        .join(CP, CP.c.id == PT.c.contact_point_id).join(ORG, ORG.c.id == CP.c.organisation_id)
        .join(FW, FW.c.id == CP.c.field_id)
        .where(among(PT.c.id, ids, conn.dialect), (PT.c.state == PingState.pending.value).is_(sa.true()))
        .order_by(PT.c.due_at, PT.c.id)).all()
    runs = {r.id: r for r in conn.execute(sa.select(RT.c.id, RT.c.revision_id, RT.c.announced, RT.c.fire_at)
                                          .where(among(RT.c.id, sorted({r.run_id for r in rows}), conn.dialect),
                                                 RT.c.status == RunStatus.running.value))} if rows else {}
    rows = [r for r in rows if r.run_id in runs]  # a run aborted or closed meanwhile sends nothing more
    if not rows:
        return Prepared([], [])
    specs: dict[int, PlaybookSpec | Exception] = {}
    for run in runs.values():  # once per run, not per attempt
        try:
            specs[run.id] = spec_for_revision_id(conn, run.revision_id)
        except Exception as exc:  # noqa: BLE001 - its attempts fail with it (below), alone
            specs[run.id] = exc
    out = Prepared([], [])
    for row in rows:
        try:
            spec = specs[row.run_id]
            if isinstance(spec, Exception):
                raise spec
            out.ready.append(_prepare(conn, row, runs[row.run_id], spec, _Who.of(row), now, settings, senders))
        except Exception as exc:  # noqa: BLE001 - a poison pill fails its own attempt only
            out.failed.append((row.id, exc))
    return out


@dataclass(frozen=True)
class _Who:
    """Whom an attempt goes to: its contact point, organisation and field of work."""

    cp: Any
    org: Any
    fld: Any

    @classmethod
    def of(cls, row: Any) -> _Who:
        return cls(SimpleNamespace(name=row.cp_name, languages=_decoded(row.cp_languages), timezone=row.cp_timezone),
                   SimpleNamespace(code=row.org_code, name=row.org_name, timezone=row.org_timezone,
                                   languages=_decoded(row.org_languages), country=row.org_country,
                                   names=_decoded(row.org_names)),
                   SimpleNamespace(code=row.field_code))


@functools.lru_cache(maxsize=4096)
def _decoded(text: str | None) -> Any:
    """A JSON column's value, read-only (it is shared by every attempt with the same value): a
    list as a tuple, an object as a read-only mapping."""
    value = json.loads(text) if text is not None else None
    if isinstance(value, list):
        return tuple(value)
    if isinstance(value, dict):
        return MappingProxyType(value)
    return value


def claim(s: Session, prepared: Prepared, now: datetime, settings: Settings, actor: str) -> list[Claimed]:
    """Mark the prepared attempts still ``pending`` as ``dispatching`` with their tokens, and
    fail those that could not be prepared. The caller commits (durably) before any provider is
    called: that is what makes an attempt go at most once.

    A handful of statements whatever the batch: one conditional UPDATE (``WHERE state =
    'pending'``) for all (scheduler.bulk), one INSERT of their events."""
    for ping_id, exc in prepared.failed:
        _template_failed(s, ping_id, now, actor, exc)
    ready = prepared.ready
    if not ready:
        return []
    conn = s.connection()
    hashes = {c.ping_id: records.token_hash(c.outgoing.token) for c in ready}
    events = [{"at": now, "actor": actor, "kind": ev.PING_DISPATCHING, "run_id": c.outgoing.run_id,
               "ping_id": c.ping_id, "organisation_code": c.outgoing.organisation_code,
               "channel": c.outgoing.channel, "outcome": None, "response_ms": None, "data": {"provider": c.provider}}
              for c in ready]
    claimed_ids = update_each(
        conn, PT, [{"id": c.ping_id, "th": hashes[c.ping_id], "exp": now + max(settings.ack_token_ttl, _deadline(c)),
                    "code": c.outgoing.ack_code} for c in ready],
        only_if=PT.c.state == PingState.pending.value,
        values={"state": PingState.dispatching.value, "dispatching_at": _NOW, "token_hash": row_value("th"),
                "token_expires_at": row_value("exp"), "ack_code": row_value("code")},
        per_row={"th": PT.c.token_hash.type, "exp": PT.c.token_expires_at.type, "code": PT.c.ack_code.type},
        key="dispatch.claim", params={"b_now": now}, log=(ET, events))
    if claimed_ids is None:  # some were taken meanwhile: ours are those holding our token
        claimed_ids = {row.id for row in conn.execute(sa.select(PT.c.id, PT.c.token_hash).where(
            PT.c.id.in_(hashes), PT.c.state == PingState.dispatching.value)) if hashes[row.id] == row.token_hash}
        insert_rows(conn, ET, [e for e in events if e["ping_id"] in claimed_ids])
    # An attempt cancelled meanwhile (its contact point answered another) is simply not claimed.
    return [c for c in ready if c.ping_id in claimed_ids]


def _deadline(claimed: Claimed) -> timedelta:
    return timedelta(seconds=claimed.ack_deadline_s)


def _prepare(conn: sa.Connection, ping: Any, run: Any, spec: PlaybookSpec, who: _Who, now: datetime,
             settings: Settings, senders: dict[str, Any]) -> Claimed:
    step = spec.step(ping.step)
    cp, org, fld = who.cp, who.org, who.fld
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10**6):06d}"
    deadline = now + step.ack_deadline
    ack_url = f"{settings.public_base_url.rstrip('/')}/ack/{token}"
    if spec.owner not in senders:  # the owner's names: {"": name, "<lang>": name in that language}
        owner = conn.execute(sa.select(ORG.c.name, ORG.c.names).where(ORG.c.code == spec.owner)).first()
        senders[spec.owner] = {"": owner.name, **(owner.names or {})} if owner else {"": spec.owner}
    sender: dict[str, str] = senders[spec.owner]
    def render(language: str) -> RenderedMessage:
        return render_ping(spec, step, run_id=run.id or 0, announced=run.announced,
                           organisation_code=org.code, organisation_name=org.name, contact_name=cp.name,
                           field_code=fld.code, language=language, timezone=cp.timezone or org.timezone,
                           ack_url=ack_url, ack_code=code, deadline_at=deadline, sender=sender[""],
                           test_at=run.fire_at, organisation_names=org.names, sender_names=sender)

    msg = render(ping.language)
    alternatives: tuple[AlternativeText, ...] = ()
    if ping.channel in SPOKEN_KINDS:
        alternatives = _alternatives(render, lambda lang: template_language(spec, step.template, lang), msg.language,
                                     (*(cp.languages or ()), *(org.languages or ()), spec.default_language))
    return Claimed(ping.id or 0, OutgoingPing(
        ping_id=ping.id or 0, run_id=ping.run_id, channel=ping.channel, address=ping.address,
        language=msg.language, subject=msg.subject, body=msg.body, html=msg.html, ack_url=ack_url,
        ack_code=code, token=token, deadline_at=deadline, organisation_code=ping.organisation_code,
        contact_name=cp.name, attempt=ping.attempt, country=org.country, alternatives=alternatives,
        invite_address=_invite_address(conn, ping),
    ), step.ack_deadline.total_seconds(), ping.provider)


def _invite_address(conn: sa.Connection, ping: Any) -> str | None:
    """Where a video ping's invitation goes: the contact point's best e-mail endpoint
    (a video bridge hosts the room but delivers no message)."""
    if ping.channel != "video":
        return None
    endpoints = usable_endpoints_of(conn, {ping.contact_point_id}).get((ping.contact_point_id, "email"), [])
    return endpoints[0].address if endpoints else None


def _alternatives(render: Callable[[str], RenderedMessage], used: Callable[[str], str], first: str,
                  languages: tuple[str, ...]) -> tuple[AlternativeText, ...]:
    """The message in each further language the template has, in the contact's order: a voice
    provider that cannot speak the first one (Luxembourgish) speaks the next it can. A language
    that falls back to one already rendered is not rendered again."""
    out: list[AlternativeText] = []
    seen = {first}
    for language in languages:
        if used(language) in seen:
            continue
        try:
            msg = render(language)
        except Exception:  # noqa: BLE001 - an alternative that fails is simply not offered
            continue
        if msg.language not in seen:
            seen.add(msg.language)
            out.append(AlternativeText(msg.language, msg.subject, msg.body))
    return tuple(out)


def _template_failed(s: Session, ping_id: int, now: datetime, actor: str, exc: Exception) -> None:
    ping = s.get(Ping, ping_id)
    assert ping is not None
    kind = getattr(exc, "kind", type(exc).__name__)  # prepared by the helper process: its name crossed as text
    message = f"the message could not be prepared for this contact point: {kind}: {exc}"
    log.error("run=%s ping=%s step=%s: %s", ping.run_id, ping.id, ping.step, records.mask_reason(message))
    records.settle(s, ping, Outcome.template_error, now, actor, state=PingState.failed,
                   from_states=(PingState.pending.value,), reason=message)
    s.flush()  # its events before the batch's: the log keeps the order things happened in
