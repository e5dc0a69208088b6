"""What follows silence: retries, the next endpoint, escalation — the moves that
``escalation.next_moves`` decides, carried out as new pings in the caller's transaction."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from commtest import events as ev
from commtest.masking import mask_address
from commtest.models import ContactPoint, FieldOfWork, Organisation, Outcome, Ping, PingState, RunStatus, TestRun
from commtest.settings import Settings
from playbooks.schema import PlaybookSpec
from scheduler import records
from scheduler.escalation import Silence, next_moves
from scheduler.planner import contact_points, usable_endpoints
from scheduler.specs import spec_for_revision


def new_ping(s: Session, run: TestRun, spec: PlaybookSpec, contact_point_id: int, organisation_code: str,
             language: str, step_id: str, endpoint_id: int | None, address: str, *, due_at: datetime,
             now: datetime, contact_point_code: str, field_code: str, settings: Settings, actor: str,
             step_attempt: int = 1, escalated_from: int | None = None) -> Ping:
    """Plan one more ping (a retry or an escalation) with its ``ping.planned`` event."""
    step = spec.step(step_id)
    last = s.exec(
        select(func.max(Ping.attempt)).where(
            Ping.run_id == run.id, Ping.contact_point_id == contact_point_id, Ping.channel == step.channel
        )
    ).one()
    ping = Ping(
        run_id=run.id or 0, contact_point_id=contact_point_id, endpoint_id=endpoint_id,
        organisation_code=organisation_code, channel=step.channel,
        provider=settings.primary_provider(step.channel), address=address, language=language,
        step=step.id, attempt=(last or 0) + 1, step_attempt=step_attempt, state=PingState.pending.value,
        due_at=due_at, escalated_from_id=escalated_from,
    )
    s.add(ping)
    s.flush()
    ev.record_event(s, at=now, actor=actor, kind=ev.PING_PLANNED, run_id=run.id, ping_id=ping.id,
                    organisation_code=organisation_code, channel=step.channel,
                    contact_point_id=contact_point_id, contact_point=contact_point_code, field=field_code,
                    step=step.id, attempt=ping.attempt, step_attempt=step_attempt, endpoint_id=endpoint_id,
                    address=mask_address(address), due_at=due_at)
    return ping


def follow_up(s: Session, ping: Ping, now: datetime, settings: Settings, actor: str) -> None:
    """Retry, next endpoint or escalation after a ping ended unacknowledged."""
    run = s.get(TestRun, ping.run_id)
    assert run is not None
    if run.status != RunStatus.running.value:
        return
    answered = s.exec(select(Ping.id).where(
        Ping.run_id == ping.run_id, Ping.contact_point_id == ping.contact_point_id, Ping.step == ping.step,
        Ping.state == PingState.acked.value)).first()
    if answered is not None:
        return  # the contact point answered this step (perhaps late, on another attempt): nothing more
    spec = spec_for_revision(s, run.revision_id)
    step = spec.step(ping.step)
    tried = set(s.exec(select(Ping.endpoint_id).where(
        Ping.run_id == ping.run_id, Ping.contact_point_id == ping.contact_point_id, Ping.step == ping.step)).all())
    endpoints = usable_endpoints(s, ping.contact_point_id, step.channel)
    fresh = [e for e in endpoints if e.id not in tried]
    moves = next_moves(spec, Silence(step.id, ping.step_attempt, Outcome(ping.outcome or "unknown"), bool(fresh)), now)
    cp = s.get(ContactPoint, ping.contact_point_id)
    assert cp is not None
    fld = s.get(FieldOfWork, cp.field_id)
    if moves.retry_at is not None:
        if moves.next_endpoint:
            ep_id, address, step_attempt = fresh[0].id, fresh[0].address, ping.step_attempt
        else:
            same = next((e for e in endpoints if e.id == ping.endpoint_id), endpoints[0] if endpoints else None)
            if same is None:
                return
            ep_id, address, step_attempt = same.id, same.address, ping.step_attempt + 1
        new = new_ping(s, run, spec, ping.contact_point_id, ping.organisation_code, ping.language, step.id,
                             ep_id, address, due_at=moves.retry_at, now=now, contact_point_code=cp.code,
                             field_code=fld.code if fld else "", step_attempt=step_attempt, escalated_from=ping.id, settings=settings, actor=actor)
        records.ping_event(s, ping, ev.PING_RETRY, now, actor, next_ping=new.id, next_attempt=new.attempt,
                       due_at=moves.retry_at, reason=ping.outcome)
    if moves.escalate is not None:
        esc = moves.escalate
        to_step = spec.step(esc.step) if esc.step else step
        if esc.field:
            org = s.get(Organisation, cp.organisation_id)
            targets = contact_points(s, org.code if org else "", esc.field, spec.default_language)
        else:
            targets = contact_points(s, ping.organisation_code, fld.code if fld else "", spec.default_language)
            targets = [t for t in targets if t.contact_point_id == ping.contact_point_id]
        for t in targets:
            already = s.exec(select(Ping.id).where(Ping.run_id == run.id, Ping.contact_point_id == t.contact_point_id,
                                                   Ping.step == to_step.id)).first()
            if already is not None:
                continue  # never escalate into a loop
            eps = usable_endpoints(s, t.contact_point_id, to_step.channel)
            if not eps:
                ev.record_event(s, at=now, actor=actor, kind=ev.RUN_GAP, run_id=run.id,
                                organisation_code=t.organisation_code, channel=to_step.channel,
                                contact_point=t.contact_point_code, field=t.field_code, step=to_step.id,
                                reason=f"escalation found no usable {to_step.channel} endpoint")
                continue
            new = new_ping(s, run, spec, t.contact_point_id, t.organisation_code, t.language, to_step.id,
                                 eps[0].id, eps[0].address, due_at=now, now=now,
                                 contact_point_code=t.contact_point_code, field_code=t.field_code,
                                 escalated_from=ping.id, settings=settings, actor=actor)
            records.ping_event(s, ping, ev.PING_ESCALATED, now, actor, to_step=to_step.id,
                           to_contact_point=t.contact_point_code, next_ping=new.id)
