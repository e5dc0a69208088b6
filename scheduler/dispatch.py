"""Claiming pings for dispatch: ``pending`` → ``dispatching``, with a fresh token and the
rendered message, in the caller's transaction."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from channels.base import OutgoingPing
from commtest import events as ev
from commtest.models import ContactPoint, FieldOfWork, Organisation, Ping, PingState, RunStatus, TestRun
from commtest.settings import Settings
from scheduler import records
from scheduler.messages import render_ping
from scheduler.specs import spec_for_revision


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
        .with_for_update(skip_locked=True)
    ).all()
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
    senders: dict[str, str] = {}
    for ping in pings:
        run = s.get(TestRun, ping.run_id)
        assert run is not None
        spec = spec_for_revision(s, run.revision_id)
        step = spec.step(ping.step)
        cp, org, fld = who[ping.contact_point_id]
        token = secrets.token_urlsafe(32)
        code = f"{secrets.randbelow(10**6):06d}"
        deadline = now + step.ack_deadline
        ack_url = f"{settings.public_base_url.rstrip('/')}/ack/{token}"
        if spec.owner not in senders:
            senders[spec.owner] = s.exec(select(Organisation.name).where(
                Organisation.code == spec.owner)).first() or spec.owner
        sender = senders[spec.owner]
        msg = render_ping(spec, step, run_id=run.id or 0, announced=run.announced,
                          organisation_code=org.code, organisation_name=org.name, contact_name=cp.name,
                          field_code=fld.code, language=ping.language, timezone=cp.timezone or org.timezone,
                          ack_url=ack_url, ack_code=code, deadline_at=deadline, sender=sender,
                          test_at=run.fire_at)
        ping.state = PingState.dispatching.value
        ping.dispatching_at = now
        ping.token_hash = records.token_hash(token)
        ping.token_expires_at = now + max(settings.ack_token_ttl, step.ack_deadline)
        ping.ack_code = code
        s.add(ping)
        records.ping_event(s, ping, ev.PING_DISPATCHING, now, actor, provider=ping.provider)
        out.append(Claimed(ping.id or 0, OutgoingPing(
            ping_id=ping.id or 0, run_id=ping.run_id, channel=ping.channel, address=ping.address,
            language=msg.language, subject=msg.subject, body=msg.body, html=msg.html, ack_url=ack_url,
            ack_code=code, token=token, deadline_at=deadline, organisation_code=ping.organisation_code,
            contact_name=cp.name, attempt=ping.attempt,
        ), step.ack_deadline.total_seconds()))
    return out
