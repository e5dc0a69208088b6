"""Import a directory file into the database: merge (default) or replace, all or nothing.

Merge upserts by code (organisations, fields, contact points) and by (contact point,
kind, address) for endpoints, and leaves rows the file does not mention alone.
Replace makes the database equal to the file, except that a contact point or endpoint
that pings refer to is deactivated instead of deleted (the test history keeps pointing
at it). Neither mode erases ``verified_at``/``last_outcome``: those are facts learned by
tests, and a file that does not state them says nothing about them.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, select

from commtest.db import session_scope
from commtest.models import (
    ContactPoint,
    Endpoint,
    EndpointStatus,
    FieldOfWork,
    Organisation,
    Ping,
)

from .load import read_directory_file
from .validate import DirectoryData, validate

KINDS = ("fields_of_work", "organisations", "contact_points", "endpoints")
ACTIONS = ("created", "updated", "unchanged", "deleted", "deactivated")


@dataclass(frozen=True)
class KindCounts:
    kind: str
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    deactivated: int = 0


@dataclass(frozen=True)
class ImportSummary:
    file: str
    replace: bool
    dry_run: bool
    counts: tuple[KindCounts, ...]
    notes: tuple[str, ...] = ()

    def count(self, kind: str, action: str) -> int:
        for c in self.counts:
            if c.kind == kind:
                return int(getattr(c, action))
        raise KeyError(kind)

    def render(self) -> str:
        mode = "replace" if self.replace else "merge"
        head = f"{self.file} ({mode}{', dry run: nothing written' if self.dry_run else ''})"
        lines = [head]
        for c in self.counts:
            parts = [f"{getattr(c, a)} {a}" for a in ACTIONS if getattr(c, a) or a in ("created", "updated", "unchanged")]
            lines.append(f"  {c.kind.replace('_', ' ')}: {', '.join(parts)}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


@dataclass
class _Tally:
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: {k: dict.fromkeys(ACTIONS, 0) for k in KINDS})
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, action: str) -> None:
        self.counts[kind][action] += 1

    def freeze(self, file: str, replace: bool, dry_run: bool) -> ImportSummary:
        counts = tuple(KindCounts(kind, **self.counts[kind]) for kind in KINDS)
        return ImportSummary(file, replace, dry_run, counts, tuple(self.notes))


class _DryRun(Exception):
    """Raised inside the transaction so that it rolls back, carrying the summary out."""

    def __init__(self, summary: ImportSummary) -> None:
        self.summary = summary


def import_directory(engine: Engine, path: Path, *, replace: bool = False, dry_run: bool = False) -> ImportSummary:
    """Validate ``path`` completely, then apply it in one transaction (nothing on any problem)."""
    raw = read_directory_file(path)
    try:
        with session_scope(engine) as session:
            known_orgs: dict[str, str] = {}
            known_fields: frozenset[str] = frozenset()
            if not replace:  # in merge mode a file may refer to what the database already has
                known_orgs = {o.code: o.country for o in session.exec(select(Organisation))}
                known_fields = frozenset(session.exec(select(FieldOfWork.code)))
            data = validate(raw, known_organisations=known_orgs, known_fields=known_fields)
            tally = _Tally()
            apply_directory(session, data, replace=replace, tally=tally)
            summary = tally.freeze(str(path), replace, dry_run)
            if dry_run:
                raise _DryRun(summary)
            return summary
    except _DryRun as done:
        return done.summary


def apply_directory(session: Session, data: DirectoryData, *, replace: bool, tally: _Tally | None = None) -> None:
    tally = tally or _Tally()
    fields = {f.code: f for f in session.exec(select(FieldOfWork))}
    for fin in data.fields:
        fields[fin.code] = _upsert(session, tally, "fields_of_work", fields.get(fin.code), FieldOfWork,
                                   {"code": fin.code, "name": fin.name, "names": dict(fin.names)})  # fmt: skip
    orgs = {o.code: o for o in session.exec(select(Organisation))}
    for oin in data.organisations:
        values = oin.model_dump()
        orgs[oin.code] = _upsert(session, tally, "organisations", orgs.get(oin.code), Organisation, values)
    cps = {c.code: c for c in session.exec(select(ContactPoint))}
    for cin in data.contact_points:
        values = cin.model_dump(exclude={"organisation", "field"})
        values["organisation_id"] = orgs[cin.organisation].id
        values["field_id"] = fields[cin.field].id
        cps[cin.code] = _upsert(session, tally, "contact_points", cps.get(cin.code), ContactPoint, values)
    endpoints: dict[tuple[int | None, str, str], Endpoint] = {
        (e.contact_point_id, e.kind, e.address): e for e in session.exec(select(Endpoint))
    }
    wanted: set[tuple[int | None, str, str]] = set()
    for cp_code, ein in data.endpoints:
        key = (cps[cp_code].id, ein.kind, ein.address)
        wanted.add(key)
        values = {"contact_point_id": key[0], "kind": ein.kind, "address": ein.address,
                  "priority": ein.priority, "label": ein.label}  # fmt: skip
        current = endpoints.get(key)
        # Unstated status / verified_at keep what tests learned; a new endpoint starts active.
        if ein.status is not None or current is None:
            values["status"] = ein.status or EndpointStatus.active.value
        if ein.verified_at is not None:
            values["verified_at"] = ein.verified_at
        _upsert(session, tally, "endpoints", current, Endpoint, values)
    if replace:
        _remove_unlisted(session, tally, data, wanted)


def _upsert(session: Session, tally: _Tally, kind: str, row: Any, model: type[SQLModel], values: dict[str, Any]) -> Any:
    if row is None:
        row = model(**values)
        session.add(row)
        session.flush()
        tally.add(kind, "created")
        return row
    changed = False
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    tally.add(kind, "updated" if changed else "unchanged")
    if changed:
        session.add(row)
    return row


def _remove_unlisted(
    session: Session, tally: _Tally, data: DirectoryData, wanted_endpoints: set[tuple[int | None, str, str]]
) -> None:
    pinged_cps = set(session.exec(select(Ping.contact_point_id).distinct()))
    pinged_eps = {e for e in session.exec(select(Ping.endpoint_id).distinct()) if e is not None}
    cp_codes = {c.code for c in data.contact_points}
    cps = {c.id: c for c in session.exec(select(ContactPoint))}
    kept_cps: set[int | None] = set()
    for ep in sorted(session.exec(select(Endpoint)).all(), key=lambda e: e.id or 0):
        if (ep.contact_point_id, ep.kind, ep.address) in wanted_endpoints:
            continue
        cp = cps[ep.contact_point_id]
        if ep.id in pinged_eps:
            kept_cps.add(cp.id)
            if ep.status != EndpointStatus.invalid.value:
                ep.status = EndpointStatus.invalid.value
                session.add(ep)
                tally.add("endpoints", "deactivated")
                tally.notes.append(f"endpoint {ep.kind} {ep.address} of {cp.code} is referenced by pings: marked invalid, not deleted")
        else:
            session.delete(ep)
            tally.add("endpoints", "deleted")
    session.flush()
    for cp in sorted(cps.values(), key=lambda c: c.code):
        if cp.code in cp_codes:
            continue
        if cp.id in pinged_cps or cp.id in kept_cps:
            kept_cps.add(cp.id)
            if cp.active:
                cp.active = False
                session.add(cp)
                tally.add("contact_points", "deactivated")
                tally.notes.append(f"contact point {cp.code} is referenced by pings: deactivated, not deleted")
        else:
            session.delete(cp)
            tally.add("contact_points", "deleted")
    session.flush()
    kept = [cps[i] for i in kept_cps if i is not None and cps[i].code not in cp_codes]
    _remove_parents(session, tally, Organisation, "organisations", {o.code for o in data.organisations},
                    {c.organisation_id for c in kept}, "organisation")  # fmt: skip
    _remove_parents(session, tally, FieldOfWork, "fields_of_work", {f.code for f in data.fields},
                    {c.field_id for c in kept}, "field of work")  # fmt: skip


def _remove_parents(
    session: Session, tally: _Tally, model: Any, kind: str, listed: set[str], needed: Iterable[int], what: str
) -> None:
    needed_ids = set(needed)
    for row in session.exec(select(model).order_by(model.code)).all():
        if row.code in listed:
            continue
        if row.id in needed_ids:
            tally.notes.append(f"{what} {row.code} kept: a deactivated contact point still belongs to it")
            continue
        session.delete(row)
        tally.add(kind, "deleted")
    session.flush()


def resolve_contact_points(session: Session, organisation_code: str, field_code: str) -> list[ContactPoint]:
    """The active contact points of an organisation in a field of work, by code."""
    stmt = (
        select(ContactPoint)
        .join(Organisation, Organisation.id == ContactPoint.organisation_id)  # type: ignore[arg-type]
        .join(FieldOfWork, FieldOfWork.id == ContactPoint.field_id)  # type: ignore[arg-type]
        .where(Organisation.code == organisation_code, FieldOfWork.code == field_code, ContactPoint.active == sa.true())
        .order_by(ContactPoint.code)
    )
    return list(session.exec(stmt).all())
