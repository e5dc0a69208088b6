"""Which pings a run needs: participants → contact points → endpoints, per step.

Pure database reads; the engine writes what this returns.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from commtest.models import ContactPoint, Endpoint, EndpointStatus, FieldOfWork, Organisation
from playbooks.schema import PlaybookSpec, StepSpec


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
    rows = session.exec(
        select(ContactPoint, Organisation, FieldOfWork)
        .join(Organisation, col(Organisation.id) == col(ContactPoint.organisation_id))
        .join(FieldOfWork, col(FieldOfWork.id) == col(ContactPoint.field_id))
        .where(Organisation.code == organisation_code, FieldOfWork.code == field_code, ContactPoint.active == True)  # noqa: E712
        .order_by(col(ContactPoint.code))
    ).all()
    out = []
    for cp, org, fld in rows:
        langs = list(cp.languages or []) or list(org.languages or []) or [default_language]
        out.append(
            Target(
                contact_point_id=cp.id or 0,
                contact_point_code=cp.code,
                contact_name=cp.name,
                organisation_code=org.code,
                organisation_name=org.name,
                field_code=fld.code,
                language=langs[0],
                timezone=cp.timezone or org.timezone,
            )
        )
    return out


def usable_endpoints(session: Session, contact_point_id: int, kind: str) -> list[Endpoint]:
    """Active endpoints first, then suspect ones (a suspect address is still worth a try);
    invalid ones never, nor blocked ones (the number replied STOP: the provider refuses it
    until it sends START). Best priority first."""
    eps = session.exec(
        select(Endpoint).where(
            Endpoint.contact_point_id == contact_point_id,
            Endpoint.kind == kind,
            col(Endpoint.status).not_in((EndpointStatus.invalid.value, EndpointStatus.blocked.value)),
        )
    ).all()
    return sorted(eps, key=lambda e: (e.status != EndpointStatus.active.value, e.priority, e.id or 0))


def initial_plan(session: Session, spec: PlaybookSpec) -> tuple[list[PlannedPing], list[tuple[Target | None, StepSpec, str]]]:
    """The first attempt of every initial step for every participant's contact points.

    Returns the planned pings and the gaps (a participant without a contact point, a
    contact point without an endpoint on a step's channel), which the run records.
    """
    planned: list[PlannedPing] = []
    gaps: list[tuple[Target | None, StepSpec, str]] = []
    steps = spec.initial_steps()
    for participant in spec.participants:
        for field_code in participant.fields:
            targets = contact_points(session, participant.organisation, field_code, spec.default_language)
            if not targets:
                for step in (s for s in steps if s.pings(participant.organisation)):
                    gaps.append((None, step, f"{participant.organisation}/{field_code}: no active contact point"))
                continue
            for target in targets:
                for step in (s for s in steps if s.pings(participant.organisation)):
                    eps = usable_endpoints(session, target.contact_point_id, step.channel)
                    if not eps:
                        gaps.append((target, step, f"no usable {step.channel} endpoint"))
                        continue
                    planned.append(PlannedPing(target, step, eps[0].id, eps[0].address))
    return planned, gaps
