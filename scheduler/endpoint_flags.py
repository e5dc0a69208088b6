"""What an attempt teaches the directory about its endpoint: suspect, invalid or blocked,
each with its reason in an ``endpoint.status`` event; and a blocked number made active again
by its own START.

A block is about a number, not one contact point: the provider refuses every SMS to it
(Twilio 21610 after a STOP), so every SMS endpoint with that number is blocked, and its
START unblocks them all. Writes are conditional on the status read, like every state change
(ARCHITECTURE.md, "Invariants"); a simulated ping never changes the directory.
"""
from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from commtest import events as ev
from commtest.masking import mask_address, mask_in_text
from commtest.models import ContactPoint, Endpoint, EndpointStatus, Organisation, Outcome, Ping

__all__ = ["flag_endpoint", "mask_reason", "unblock_number"]

log = logging.getLogger("commtest.directory")

EPT = Endpoint.__table__  # type: ignore[attr-defined]
CPT = ContactPoint.__table__  # type: ignore[attr-defined]
ORGT = Organisation.__table__  # type: ignore[attr-defined]

# The statuses a flag leaves as they are: nothing comes back from invalid, and a suspect
# flag (a bounce) never hides a block that only the number's START may lift.
_KEPT = {
    EndpointStatus.suspect: (EndpointStatus.invalid.value, EndpointStatus.blocked.value, EndpointStatus.suspect.value),
    EndpointStatus.blocked: (EndpointStatus.invalid.value, EndpointStatus.blocked.value),
    EndpointStatus.invalid: (EndpointStatus.invalid.value,),
}


def mask_reason(reason: str) -> str:
    """Provider texts may quote the address (``550 <x@y> unknown``): never log it unmasked."""
    return mask_in_text(reason)[:500]


def flag_endpoint(session: Session, ping: Ping, status: EndpointStatus, at: datetime, actor: str, reason: str) -> None:
    """Mark the ping's endpoint ``status`` with ``reason``. An attempt that ended ``blocked``
    (STOP, Twilio 21610 or 30004) blocks its number whatever flag the caller asked for."""
    if ping.endpoint_id is None or ping.simulated:
        return
    if ping.outcome == Outcome.blocked.value or status == EndpointStatus.blocked:
        status = EndpointStatus.blocked
    if status not in _KEPT:
        raise ValueError(f"an attempt cannot flag an endpoint {status.value}")
    conn = session.connection()
    target = EPT.c.id == ping.endpoint_id
    if status == EndpointStatus.blocked:
        own = conn.execute(sa.select(EPT.c.kind, EPT.c.address).where(EPT.c.id == ping.endpoint_id)).first()
        if own is None:
            return
        target = sa.and_(EPT.c.kind == own.kind, EPT.c.address == own.address)
    changed: list[int] = list(conn.execute(
        EPT.update().where(target, EPT.c.status.not_in(_KEPT[status]))
        .values(status=status.value, last_outcome=ping.outcome, last_outcome_at=at)
        .returning(EPT.c.id)
    ).scalars().all())
    organisations = _organisations(conn, changed)
    for endpoint_id in sorted(changed):
        ev.record_event(session, at=at, actor=actor, kind=ev.ENDPOINT_STATUS, run_id=ping.run_id, ping_id=ping.id,
                        organisation_code=organisations.get(endpoint_id, ping.organisation_code),
                        channel=ping.channel, endpoint_id=endpoint_id, status=status.value,
                        reason=mask_reason(reason))
        log.info("endpoint=%s %s %s: %s", endpoint_id, ping.channel, status.value, mask_reason(reason))


def unblock_number(session: Session, kind: str, address: str, at: datetime, actor: str, reason: str) -> int:
    """The number sent START (or UNSTOP, YES): its blocked ``kind`` endpoints are active again,
    each with an ``endpoint.status`` event. Returns how many; a number that was not blocked
    changes nothing."""
    conn = session.connection()
    changed: list[int] = list(conn.execute(
        EPT.update().where(EPT.c.kind == kind, EPT.c.address == address,
                           EPT.c.status == EndpointStatus.blocked.value)
        .values(status=EndpointStatus.active.value)
        .returning(EPT.c.id)
    ).scalars().all())
    organisations = _organisations(conn, changed)
    for endpoint_id in sorted(changed):
        ev.record_event(session, at=at, actor=actor, kind=ev.ENDPOINT_STATUS, organisation_code=organisations.get(
            endpoint_id), channel=kind, endpoint_id=endpoint_id, status=EndpointStatus.active.value,
            reason=mask_reason(reason))
        log.info("endpoint=%s %s %s unblocked: %s", endpoint_id, kind, mask_address(address), mask_reason(reason))
    return len(changed)


def _organisations(conn: sa.Connection, endpoint_ids: list[int]) -> dict[int, str]:
    if not endpoint_ids:
        return {}
    rows = conn.execute(
        sa.select(EPT.c.id, ORGT.c.code).join(CPT, CPT.c.id == EPT.c.contact_point_id)
        .join(ORGT, ORGT.c.id == CPT.c.organisation_id).where(EPT.c.id.in_(endpoint_ids))
    ).all()
    return {int(r.id): str(r.code) for r in rows}
