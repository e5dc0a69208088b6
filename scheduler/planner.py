"""Which pings a run needs: participants → contact points → endpoints, per step.

Pure database reads; the engine writes what this returns.
"""
from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session

from commtest.models import ContactPoint, Endpoint, EndpointStatus, FieldOfWork, Organisation
from playbooks.schema import PlaybookSpec, StepSpec

CP = ContactPoint.__table__  # type: ignore[attr-defined]
ORG = Organisation.__table__  # type: ignore[attr-defined]
FW = FieldOfWork.__table__  # type: ignore[attr-defined]
EP = Endpoint.__table__  # type: ignore[attr-defined]
# Endpoint statuses never pinged: invalid, and blocked (the number replied STOP: the provider
# refuses it until it sends START).
UNUSABLE = (EndpointStatus.invalid.value, EndpointStatus.blocked.value)


@dataclass(frozen=True)
class Target:
    """One contact point of a participant, with what the engine needs to ping it."""

    contact_point_id: int
    contact_point_code: str
    contact_name: str
    organisation_code: str
    organisation_name: str
    field_code: str
    language: str
    timezone: str


@dataclass(frozen=True)
class PlannedPing:
    target: Target
    step: StepSpec
    endpoint_id: int | None
    address: str


def contact_points(session: Session, organisation_code: str, field_code: str, default_language: str) -> list[Target]:
    return targets_of(session.connection(), {(organisation_code, field_code)}, default_language).get(
        (organisation_code, field_code), [])


def targets_of(conn: sa.Connection, pairs: set[tuple[str, str]], default_language: str
               ) -> dict[tuple[str, str], list[Target]]:
    """The active contact points of every (organisation, field of work) in ``pairs``, in one
    query: planning a run of thousands of attempts asks once, not once per participant."""
    if not pairs:
        return {}
    orgs = {o for o, _ in pairs}
    fields = {f for _, f in pairs}
    rows = conn.execute(
        sa.select(CP.c.id, CP.c.code, CP.c.name, CP.c.languages, CP.c.timezone, ORG.c.code.label("org_code"),
                  ORG.c.name.label("org_name"), ORG.c.languages.label("org_languages"),
                  ORG.c.timezone.label("org_timezone"), FW.c.code.label("field_code"))
        .join(ORG, ORG.c.id == CP.c.organisation_id).join(FW, FW.c.id == CP.c.field_id)
        .where(ORG.c.code.in_(orgs), FW.c.code.in_(fields), CP.c.active.is_(True))
        .order_by(CP.c.code)
    ).all()
    out: dict[tuple[str, str], list[Target]] = {pair: [] for pair in pairs}
    for r in rows:
        pair = (r.org_code, r.field_code)
        if pair not in out:
            continue
        langs = list(r.languages or []) or list(r.org_languages or []) or [default_language]
        out[pair].append(Target(
            contact_point_id=r.id, contact_point_code=r.code, contact_name=r.name, organisation_code=r.org_code,
            organisation_name=r.org_name, field_code=r.field_code, language=langs[0],
            timezone=r.timezone or r.org_timezone,
        ))
    return out


@dataclass(frozen=True)
class UsableEndpoint:
    id: int
    contact_point_id: int
    kind: str
    address: str
    status: str
    priority: int


def _best_first(e: UsableEndpoint) -> tuple[bool, int, int]:
    # Active endpoints first, then suspect ones (a suspect address is still worth a try).
    return (e.status != EndpointStatus.active.value, e.priority, e.id)


def usable_endpoints_of(conn: sa.Connection, contact_point_ids: set[int]) -> dict[tuple[int, str], list[UsableEndpoint]]:
    """Every usable endpoint of these contact points by (contact point, kind), best first, in
    one query. Invalid and blocked endpoints are never usable."""
    out: dict[tuple[int, str], list[UsableEndpoint]] = {}
    if not contact_point_ids:
        return out
    rows = conn.execute(
        sa.select(EP.c.id, EP.c.contact_point_id, EP.c.kind, EP.c.address, EP.c.status, EP.c.priority)
        .where(EP.c.contact_point_id.in_(contact_point_ids), EP.c.status.not_in(UNUSABLE))
    ).all()
    for r in rows:
        e = UsableEndpoint(r.id, r.contact_point_id, r.kind, r.address, r.status, r.priority)
        out.setdefault((e.contact_point_id, e.kind), []).append(e)
    for eps in out.values():
        eps.sort(key=_best_first)
    return out


def usable_endpoints(session: Session, contact_point_id: int, kind: str) -> list[UsableEndpoint]:
    """Usable endpoints of one contact point on one kind, best first."""
    return usable_endpoints_of(session.connection(), {contact_point_id}).get((contact_point_id, kind), [])


def initial_plan(session: Session, spec: PlaybookSpec) -> tuple[list[PlannedPing], list[tuple[Target | None, StepSpec, str]]]:
    """The first attempt of every initial step for every participant's contact points.

    Returns the planned pings and the gaps (a participant without a contact point, a
    contact point without an endpoint on a step's channel), which the run records.
    """
    planned: list[PlannedPing] = []
    gaps: list[tuple[Target | None, StepSpec, str]] = []
    steps = spec.initial_steps()
    conn = session.connection()
    pairs = [(p.organisation, f) for p in spec.participants for f in p.fields]
    targets = targets_of(conn, set(pairs), spec.default_language)
    endpoints = usable_endpoints_of(conn, {t.contact_point_id for ts in targets.values() for t in ts})
    for organisation, field_code in pairs:
        found = targets.get((organisation, field_code), [])
        # A step may name the participants it pings (``organisations:``): the others get nothing on it.
        own = [s for s in steps if s.pings(organisation)]
        if not found:
            for step in own:
                gaps.append((None, step, f"{organisation}/{field_code}: no active contact point"))
            continue
        for target in found:
            for step in own:
                eps = endpoints.get((target.contact_point_id, step.channel), [])
                if not eps:
                    gaps.append((target, step, f"no usable {step.channel} endpoint"))
                    continue
                planned.append(PlannedPing(target, step, eps[0].id, eps[0].address))
    return planned, gaps
