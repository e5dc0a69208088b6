"""Claiming pings for dispatch: ``pending`` → ``dispatching``, with a fresh token and the
rendered message, in the caller's transaction.

One attempt that cannot be prepared (its template fails for this contact point, its
playbook revision no longer reads) fails alone, as ``template_error`` with the message:
it never blocks the other attempts of the batch, nor the next tick.
"""
from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from channels.base import SPOKEN_KINDS, AlternativeText, OutgoingPing
from commtest import events as ev
from commtest.models import ContactPoint, FieldOfWork, Organisation, Outcome, Ping, PingState, RunStatus, TestRun
from commtest.settings import Settings
from playbooks.schema import PlaybookSpec
from playbooks.templates import RenderedMessage
from scheduler import records
from scheduler.messages import render_ping
from scheduler.specs import spec_for_revision

log = logging.getLogger(__name__)


@dataclass
class Claimed:
    ping_id: int
    outgoing: OutgoingPing
    ack_deadline_s: float


def claim_due(s: Session, now: datetime, batch: int, settings: Settings, actor: str) -> list[Claimed]:
    """Mark up to ``batch`` due pings ``dispatching`` and render their messages. The caller
    commits (durably) before any provider is called: that is what makes a ping go at most once."""
    out: list[Claimed] = []
    pings = s.exec(
        select(Ping)
        .join(TestRun, col(TestRun.id) == col(Ping.run_id))
        .where(Ping.state == PingState.pending.value, col(Ping.due_at) <= now,
               TestRun.status == RunStatus.running.value)
        .order_by(col(Ping.due_at), col(Ping.id))
        .limit(batch)
        .with_for_update(skip_locked=True, of=Ping)  # type: ignore[arg-type]
    ).all()
    if not pings:
        return out
    # One query for the contact points, organisations and fields of the whole batch.
    who = {
        cp.id: (cp, org, fld)
        for cp, org, fld in s.exec(
            select(ContactPoint, Organisation, FieldOfWork)
            .join(Organisation, col(Organisation.id) == col(ContactPoint.organisation_id))
            .join(FieldOfWork, col(FieldOfWork.id) == col(ContactPoint.field_id))
            .where(col(ContactPoint.id).in_({p.contact_point_id for p in pings}))
        ).all()
    }
    runs = {r.id: r for r in s.exec(select(TestRun).where(col(TestRun.id).in_({p.run_id for p in pings}))).all()}
    senders: dict[str, str] = {}
    for ping in pings:
        try:
            claimed = _prepare(s, ping, runs[ping.run_id], who[ping.contact_point_id], now, settings, senders)
        except Exception as exc:  # noqa: BLE001 - a poison pill fails its own attempt only
            _template_failed(s, ping, now, actor, exc)
            continue
        values = {"state": PingState.dispatching.value, "dispatching_at": now,
                  "token_hash": records.token_hash(claimed.outgoing.token),
                  "token_expires_at": now + max(settings.ack_token_ttl, _deadline(claimed)),
                  "ack_code": claimed.outgoing.ack_code}
        if not records.update_ping(s, ping, (PingState.pending.value,), **values):
            continue  # taken by another writer (cancelled by an answer meanwhile)
        records.ping_event(s, ping, ev.PING_DISPATCHING, now, actor, provider=ping.provider)
        out.append(claimed)
    return out


def _deadline(claimed: Claimed) -> timedelta:
    return timedelta(seconds=claimed.ack_deadline_s)


def _prepare(s: Session, ping: Ping, run: TestRun, who: tuple[ContactPoint, Organisation, FieldOfWork],
             now: datetime, settings: Settings, senders: dict[str, Any]) -> Claimed:
    spec: PlaybookSpec = spec_for_revision(s, run.revision_id)
    step = spec.step(ping.step)
    cp, org, fld = who
    token = secrets.token_urlsafe(32)
    code = f"{secrets.randbelow(10**6):06d}"
    deadline = now + step.ack_deadline
    ack_url = f"{settings.public_base_url.rstrip('/')}/ack/{token}"
    if spec.owner not in senders:  # the owner's names: {"": name, "<lang>": name in that language}
        owner = s.exec(select(Organisation).where(Organisation.code == spec.owner)).first()
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
        alternatives = _alternatives(render, msg.language, (*(cp.languages or ()), *(org.languages or ()),
                                                            spec.default_language))
    return Claimed(ping.id or 0, OutgoingPing(
        ping_id=ping.id or 0, run_id=ping.run_id, channel=ping.channel, address=ping.address,
        language=msg.language, subject=msg.subject, body=msg.body, html=msg.html, ack_url=ack_url,
        ack_code=code, token=token, deadline_at=deadline, organisation_code=ping.organisation_code,
        contact_name=cp.name, attempt=ping.attempt, country=org.country, alternatives=alternatives,
        invite_address=_invite_address(s, ping),
    ), step.ack_deadline.total_seconds())


def _invite_address(s: Session, ping: Ping) -> str | None:
    """Where a video ping's invitation goes: the contact point's best e-mail endpoint
    (a video bridge hosts the room but delivers no message)."""
    if ping.channel != "video":
        return None
    from scheduler.planner import usable_endpoints

    endpoints = usable_endpoints(s, ping.contact_point_id, "email")
    return endpoints[0].address if endpoints else None


def _alternatives(render: Callable[[str], RenderedMessage], first: str,
                  languages: tuple[str, ...]) -> tuple[AlternativeText, ...]:
    """The message in each further language the template has, in the contact's order: a voice
    provider that cannot speak the first one (Luxembourgish) speaks the next it can."""
    out: list[AlternativeText] = []
    seen = {first}
    for language in languages:
        try:
            msg = render(language)
        except Exception:  # noqa: BLE001 - an alternative that fails is simply not offered
            continue
        if msg.language not in seen:
            seen.add(msg.language)
            out.append(AlternativeText(msg.language, msg.subject, msg.body))
    return tuple(out)


def _template_failed(s: Session, ping: Ping, now: datetime, actor: str, exc: Exception) -> None:
    message = f"the message could not be prepared for this contact point: {type(exc).__name__}: {exc}"
    log.error("run=%s ping=%s step=%s: %s", ping.run_id, ping.id, ping.step, message)
    records.settle(s, ping, Outcome.template_error, now, actor, state=PingState.failed,
                   from_states=(PingState.pending.value,), reason=message)
