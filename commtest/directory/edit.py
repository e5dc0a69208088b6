"""Changes to one endpoint or contact point made by a person (the console, the API, an
approved correction): validated like an import, recorded as events with the user.

A changed address has never been proven reachable: its ``verified_at`` and last outcome are
cleared, and a suspect or invalid status goes back to active (it is a new address).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from commtest import events as ev
from commtest.errors import CommtestError, NotFoundError
from commtest.masking import mask_address
from commtest.models import ContactPoint, Endpoint, EndpointStatus, Organisation

from .schema import country_code, endpoint_address, endpoint_key

__all__ = ["BadEdit", "EndpointChange", "apply_endpoint_change", "region_of"]


class BadEdit(CommtestError):
    """A value a person typed is not acceptable; ``field`` names it."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class EndpointChange:
    """What to set on an endpoint; None leaves the value as it is."""

    address: str | None = None
    label: str | None = None
    priority: int | None = None
    status: str | None = None


def region_of(organisation: Organisation) -> str | None:
    """The dialling region of an organisation (``DE-NW`` dials as ``DE``)."""
    try:
        return country_code(organisation.country).split("-")[0]
    except ValueError:
        return None


def apply_endpoint_change(session: Session, endpoint: Endpoint, change: EndpointChange, at: datetime, *,
                          actor: str, by: str, reason: str = "") -> dict[str, Any]:
    """Validate and apply ``change`` to ``endpoint`` in the caller's transaction; appends
    ``endpoint.edited`` when something changed. Returns {field: (before, after)}."""
    cp = session.get(ContactPoint, endpoint.contact_point_id)
    org = session.get(Organisation, cp.organisation_id) if cp else None
    if cp is None or org is None:
        raise NotFoundError(f"endpoint {endpoint.id} has no contact point")
    changed: dict[str, Any] = {}
    if change.address is not None:
        try:
            address = endpoint_address(endpoint.kind, change.address, region_of(org))
        except ValueError as exc:
            raise BadEdit("address", str(exc)) from None
        if endpoint_key(endpoint.kind, address) != endpoint_key(endpoint.kind, endpoint.address):
            clash = session.exec(select(Endpoint).where(Endpoint.contact_point_id == endpoint.contact_point_id,
                                                        Endpoint.kind == endpoint.kind,
                                                        Endpoint.id != endpoint.id)).all()  # type: ignore[arg-type]
            if any(endpoint_key(e.kind, e.address) == endpoint_key(endpoint.kind, address) for e in clash):
                raise BadEdit("address", f"{cp.code} already has this {endpoint.kind} address; edit that endpoint instead")
            changed["address"] = (mask_address(endpoint.address), mask_address(address))
            endpoint.address = address
            endpoint.verified_at = None
            endpoint.verified_run_id = None
            endpoint.last_outcome = None
            endpoint.last_outcome_at = None
            if endpoint.status != EndpointStatus.active.value:
                changed["status"] = (endpoint.status, EndpointStatus.active.value)
                endpoint.status = EndpointStatus.active.value
    if change.label is not None and change.label.strip() != endpoint.label:
        label = change.label.strip()
        if len(label) > 100:
            raise BadEdit("label", "at most 100 characters")
        changed["label"] = (endpoint.label, label)
        endpoint.label = label
    if change.priority is not None and change.priority != endpoint.priority:
        if not 1 <= change.priority <= 99:
            raise BadEdit("priority", "a whole number from 1 (tried first) to 99")
        changed["priority"] = (endpoint.priority, change.priority)
        endpoint.priority = change.priority
    if change.status is not None and change.status != endpoint.status and "status" not in changed:
        if change.status not in tuple(s.value for s in EndpointStatus):
            raise BadEdit("status", "active, suspect, invalid or blocked")
        changed["status"] = (endpoint.status, change.status)
        endpoint.status = change.status
    if changed:
        session.add(endpoint)
        ev.record_event(session, at=at, actor=actor, kind=ev.ENDPOINT_EDITED, organisation_code=org.code,
                        channel=endpoint.kind, endpoint_id=endpoint.id, contact_point=cp.code, by=by,
                        changes={k: list(v) for k, v in changed.items()}, reason=reason)
    return changed
