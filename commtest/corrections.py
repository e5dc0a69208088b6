"""Corrections of the directory sent by duty officers ("our details changed") from an
acknowledgement page, and a coordinator's decision on each.

Filing validates the values (a phone number for the organisation's country, an e-mail
address) and changes nothing in the directory. Approving applies them in one transaction,
from ``pending`` only (a conditional write, so two coordinators cannot both apply it), and
records who approved it and when: ``correction.approved`` with the changes, plus one
``endpoint.edited`` per endpoint. What changes is decided by ``planned_changes``, which the
console shows before the coordinator decides:

* a new number replaces the number the ping went to when it was a call or an SMS, else the
  contact point's first phone endpoint (a voice endpoint is added when it has none);
* a new e-mail address replaces the address the ping went to when it was an e-mail, else
  the contact point's first e-mail endpoint (or one is added);
* a new contact name replaces the contact point's name.

Their events name the run and ping in ``data`` only (not ``run_id``/``ping_id``): a test
report, and ``report verify`` of it, covers the test, not the directory's later life.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from commtest import events as ev
from commtest.db import read_session, run_write
from commtest.directory.edit import BadEdit, EndpointChange, apply_endpoint_change, region_of
from commtest.directory.schema import email_address, phone_number
from commtest.errors import CommtestError, NotFoundError
from commtest.masking import mask_address
from commtest.models import ContactPoint, DirectoryCorrection, Endpoint, Organisation, Ping

MAX_PENDING_PER_PING = 3
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
CT = DirectoryCorrection.__table__  # type: ignore[attr-defined]


class CorrectionRefused(CommtestError):
    exit_code = 2


@dataclass(frozen=True)
class PlannedChange:
    what: str  # voice | sms | email (an endpoint of that kind) | name (the contact point's)
    endpoint_id: int | None  # None: a new endpoint, or the name
    before: str
    after: str


@dataclass(frozen=True)
class CorrectionView:
    id: int
    ping_id: int
    run_id: int
    organisation_code: str
    contact_point_id: int
    contact_point_code: str
    contact_point_name: str
    channel: str
    phone: str | None
    email: str | None
    contact_name: str | None
    note: str
    submitted_by: str
    submitted_at: datetime | None
    status: str
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str
    planned: list[PlannedChange] = field(default_factory=list)


def file_correction(engine: Engine, ping_id: int, now: datetime, *, phone: str = "", email: str = "",
                    contact_name: str = "", note: str = "", by: str = "", source: str = "") -> int:
    """Validate and store the new details; raises ``BadEdit`` naming the field."""
    phone, email, contact_name, note = (v.strip() for v in (phone, email, contact_name, note))
    if not (phone or email or contact_name):
        raise BadEdit("phone", "give at least a new number, a new e-mail address or a new contact name")
    if len(contact_name) > 200:
        raise BadEdit("contact_name", "at most 200 characters")
    if len(note) > 1000:
        raise BadEdit("note", "at most 1000 characters")

    def work(s: Session) -> int:
        ping = s.get(Ping, ping_id)
        if ping is None:
            raise NotFoundError(f"ping {ping_id} not found")
        cp = s.get(ContactPoint, ping.contact_point_id)
        org = s.get(Organisation, cp.organisation_id) if cp else None
        if cp is None or org is None:
            raise NotFoundError(f"ping {ping_id} has no contact point")
        try:
            e164 = phone_number(phone, region_of(org)) if phone else None
        except ValueError as exc:
            raise BadEdit("phone", str(exc)) from None
        try:
            mail = email_address(email) if email else None
        except ValueError as exc:
            raise BadEdit("email", str(exc)) from None
        waiting = s.exec(select(sa.func.count()).select_from(DirectoryCorrection).where(
            DirectoryCorrection.ping_id == ping_id, DirectoryCorrection.status == PENDING)).one()
        if waiting >= MAX_PENDING_PER_PING:
            raise CorrectionRefused("corrections for this message are already waiting for a coordinator")
        row = DirectoryCorrection(ping_id=ping_id, run_id=ping.run_id, contact_point_id=cp.id or 0,
                                  organisation_code=org.code, channel=ping.channel, phone=e164, email=mail,
                                  contact_name=contact_name or None, note=note, submitted_by=by[:200],
                                  submitted_at=now, source=source[:64])
        s.add(row)
        s.flush()
        ev.record_event(s, at=now, actor="web", kind=ev.CORRECTION_FILED, run=ping.run_id, ping=ping.id,
                        organisation_code=org.code, channel=ping.channel, correction_id=row.id,
                        contact_point=cp.code, by=by[:200],
                        fields=[k for k, v in (("phone", e164), ("email", mail), ("contact_name", contact_name)) if v])
        return row.id or 0

    return run_write(engine, work)


def _first(s: Session, cp_id: int, kinds: tuple[str, ...]) -> Endpoint | None:
    return s.exec(select(Endpoint).where(Endpoint.contact_point_id == cp_id, col(Endpoint.kind).in_(kinds))
                  .order_by(col(Endpoint.priority), col(Endpoint.id))).first()


def _targets(s: Session, row: DirectoryCorrection) -> list[tuple[str, Endpoint | None, str]]:
    """(kind, endpoint or None for a new one, new address) for each address in ``row``."""
    ping = s.get(Ping, row.ping_id)
    pinged = s.get(Endpoint, ping.endpoint_id) if ping and ping.endpoint_id else None
    out: list[tuple[str, Endpoint | None, str]] = []
    if row.phone:
        ep = pinged if pinged is not None and pinged.kind in ("voice", "sms") else _first(s, row.contact_point_id, ("voice",))
        out.append((ep.kind if ep else "voice", ep, row.phone))
    if row.email:
        ep = pinged if pinged is not None and pinged.kind == "email" else _first(s, row.contact_point_id, ("email",))
        out.append(("email", ep, row.email))
    return out


def planned_changes(s: Session, row: DirectoryCorrection) -> list[PlannedChange]:
    changes = [PlannedChange(kind, ep.id if ep else None, ep.address if ep else "", new)
               for kind, ep, new in _targets(s, row)]
    if row.contact_name:
        cp = s.get(ContactPoint, row.contact_point_id)
        changes.append(PlannedChange("name", None, cp.name if cp else "", row.contact_name))
    return changes


def _view(s: Session, row: DirectoryCorrection, with_plan: bool) -> CorrectionView:
    cp = s.get(ContactPoint, row.contact_point_id)
    return CorrectionView(
        row.id or 0, row.ping_id, row.run_id, row.organisation_code, row.contact_point_id, cp.code if cp else "",
        cp.name if cp else "", row.channel, row.phone, row.email, row.contact_name, row.note, row.submitted_by,
        row.submitted_at, row.status, row.decided_by, row.decided_at, row.decision_note,
        planned_changes(s, row) if with_plan else [],
    )


def list_corrections(engine: Engine, status: str | None = PENDING, limit: int = 200) -> list[CorrectionView]:
    with read_session(engine) as s:
        query = select(DirectoryCorrection)
        if status is not None:
            query = query.where(DirectoryCorrection.status == status)
        rows = s.exec(query.order_by(col(DirectoryCorrection.id).desc()).limit(limit)).all()
        return [_view(s, r, r.status == PENDING) for r in rows]


def count_pending(engine: Engine) -> int:
    with read_session(engine) as s:
        return int(s.exec(select(sa.func.count()).select_from(DirectoryCorrection)
                          .where(DirectoryCorrection.status == PENDING)).one())


def _decide(s: Session, correction_id: int, status: str, now: datetime, by: str, note: str) -> DirectoryCorrection:
    row = s.get(DirectoryCorrection, correction_id)
    if row is None:
        raise NotFoundError(f"no correction {correction_id}")
    done = s.connection().execute(CT.update().where(CT.c.id == correction_id, CT.c.status == PENDING).values(
        status=status, decided_by=by[:100], decided_at=now, decision_note=note[:1000]))
    if done.rowcount != 1:
        s.refresh(row)
        raise CorrectionRefused(f"correction {correction_id} was already {row.status} by {row.decided_by}; "
                                "nothing changed")
    s.refresh(row)
    return row


def approve_correction(engine: Engine, correction_id: int, now: datetime, *, by: str, actor: str) -> CorrectionView:
    """Apply the correction to the directory (all or nothing) and record who approved it."""

    def work(s: Session) -> CorrectionView:
        row = _decide(s, correction_id, APPROVED, now, by, "")
        applied: list[dict[str, str]] = []
        for kind, ep, address in _targets(s, row):
            if ep is None:
                ep = Endpoint(contact_point_id=row.contact_point_id, kind=kind, address=address, priority=1,
                              label="from a duty officer's correction")
                try:
                    cp = s.get(ContactPoint, row.contact_point_id)
                    org = s.get(Organisation, cp.organisation_id) if cp else None
                    from commtest.directory.schema import endpoint_address

                    ep.address = endpoint_address(kind, address, region_of(org) if org else None)
                except ValueError as exc:
                    raise BadEdit(kind, str(exc)) from None
                s.add(ep)
                s.flush()
                applied.append({"what": kind, "before": "", "after": mask_address(ep.address)})
                continue
            before = ep.address
            if apply_endpoint_change(s, ep, EndpointChange(address=address), now, actor=actor, by=by,
                                     reason=f"correction {correction_id}"):
                applied.append({"what": kind, "before": mask_address(before), "after": mask_address(ep.address)})
        if row.contact_name:
            cp = s.get(ContactPoint, row.contact_point_id)
            if cp is not None and cp.name != row.contact_name:
                applied.append({"what": "name", "before": cp.name, "after": row.contact_name})
                cp.name = row.contact_name
                s.add(cp)
        ev.record_event(s, at=now, actor=actor, kind=ev.CORRECTION_APPROVED, run=row.run_id, ping=row.ping_id,
                        organisation_code=row.organisation_code, channel=row.channel, correction_id=row.id, by=by,
                        changes=applied)
        return _view(s, row, False)

    return run_write(engine, work)


def reject_correction(engine: Engine, correction_id: int, now: datetime, *, by: str, actor: str,
                      note: str = "") -> CorrectionView:
    def work(s: Session) -> CorrectionView:
        row = _decide(s, correction_id, REJECTED, now, by, note.strip())
        ev.record_event(s, at=now, actor=actor, kind=ev.CORRECTION_REJECTED, run=row.run_id, ping=row.ping_id,
                        organisation_code=row.organisation_code, channel=row.channel, correction_id=row.id, by=by,
                        note=note.strip()[:1000])
        return _view(s, row, False)

    return run_write(engine, work)
