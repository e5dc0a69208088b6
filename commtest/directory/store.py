"""Import a directory file into the database: merge (default) or replace, all or nothing.

Merge upserts by code (organisations, fields, contact points) and by (contact point,
kind, address) for endpoints (e-mail addresses regardless of case), writes only the keys
the file states, and leaves rows the file does not mention alone. Replace makes the
database equal to the file, except that a contact point or endpoint that pings refer to
is deactivated instead of deleted (the test history keeps pointing at it). Neither mode
erases ``verified_at``/``last_outcome`` or moves ``verified_at`` back: those are facts
learned by tests, and a file that does not state them says nothing about them. Nor does
either make a ``blocked`` endpoint (its number replied STOP) active or suspect: only the
number's START does, or a coordinator's edit of that endpoint.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from pydantic import BaseModel
from sqlmodel import Session, SQLModel, select

from commtest.db import session_scope
from commtest.limits import DEFAULT_MAX_DIRECTORY_BYTES
from commtest.models import (
    ContactPoint,
    Endpoint,
    EndpointStatus,
    FieldOfWork,
    Organisation,
    Ping,
)


from .load import read_directory_file
from .schema import EndpointIn, endpoint_key
from .validate import DirectoryData, validate

KINDS = ("fields_of_work", "organisations", "contact_points", "endpoints")
_UNBLOCKING = (EndpointStatus.active.value, EndpointStatus.suspect.value)
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


def import_directory(engine: Engine, path: Path, *, replace: bool = False, dry_run: bool = False,
                     max_bytes: int = DEFAULT_MAX_DIRECTORY_BYTES) -> ImportSummary:
    """Validate ``path`` completely, then apply it in one transaction (nothing on any problem).
    A file over ``max_bytes`` (the setting ``max_directory_bytes``) is refused unread."""
    raw = read_directory_file(path, max_bytes=max_bytes)
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
        known_field = fields.get(fin.code)
        fields[fin.code] = _upsert(session, tally, "fields_of_work", known_field, FieldOfWork,
                                   _given(fin, whole=replace or known_field is None))  # fmt: skip
    orgs = {o.code: o for o in session.exec(select(Organisation))}
    for oin in data.organisations:
        known_org = orgs.get(oin.code)
        values = _given(oin, whole=replace or known_org is None)
        orgs[oin.code] = _upsert(session, tally, "organisations", known_org, Organisation, values)
    cps = {c.code: c for c in session.exec(select(ContactPoint))}
    for cin in data.contact_points:
        known_cp = cps.get(cin.code)
        values = _given(cin, whole=replace or known_cp is None, exclude={"organisation", "field"})
        values["organisation_id"] = orgs[cin.organisation].id
        values["field_id"] = fields[cin.field].id
        cps[cin.code] = _upsert(session, tally, "contact_points", known_cp, ContactPoint, values)
    existing = _EndpointIndex(session.exec(select(Endpoint)).all())
    wanted: set[int | None] = set()
    for cp_code, ein in data.endpoints:
        cp_id = cps[cp_code].id
        known = existing.find(cp_id, ein.kind, ein.address)
        values = {"contact_point_id": cp_id, "kind": ein.kind, "address": ein.address}
        values.update(_given(ein, whole=replace or known is None, exclude={"kind", "address", "status", "verified_at"}))
        # Unstated status keeps what tests learned; a new endpoint starts active.
        if ein.status is not None or known is None:
            values["status"] = ein.status or EndpointStatus.active.value
        if known is not None and known.status == EndpointStatus.blocked.value and values.get("status") in _UNBLOCKING:
            # Only the number's START unblocks it (or a coordinator's edit): never a file, silently.
            tally.notes.append(f"endpoint {ein.kind} {ein.address} of {cp_code} is blocked (the number replied STOP): "
                               f"kept blocked, not {values.pop('status')} as the file says; it becomes active when "
                               "the number sends START, or by editing the endpoint")
        values.update(_verification(known, ein))
        row = _upsert(session, tally, "endpoints", known, Endpoint, values)
        wanted.add(row.id)
    if replace:
        _remove_unlisted(session, tally, data, wanted)


def _given(model: BaseModel, *, whole: bool, exclude: set[str] | None = None) -> dict[str, Any]:
    """The values to write: all of them (new row, or --replace: the file is the truth), or on a
    merge only the keys the file states (a key left out, or an empty CSV cell, keeps the database's)."""
    skip = set(exclude or ())
    if whole:
        return model.model_dump(exclude=skip)
    return model.model_dump(include=set(model.model_fields_set) - skip)


def _verification(current: Endpoint | None, ein: EndpointIn) -> dict[str, Any]:
    """The later of the database's and the file's ``verified_at`` wins; an import never moves it back.

    When the file's date wins, ``verified_run_id`` is cleared (no run proved that date);
    ``last_outcome``/``last_outcome_at`` stay: they are the last test's outcome, dated."""
    if ein.verified_at is None:
        return {}
    if current is None:
        return {"verified_at": ein.verified_at}
    if current.verified_at is not None and current.verified_at >= ein.verified_at:
        return {}
    return {"verified_at": ein.verified_at, "verified_run_id": None}


class _EndpointIndex:
    """Existing endpoints by (contact point, kind, address); e-mail addresses match regardless of
    case (``lower(address)``), an exact spelling first (older imports may have left both)."""

    def __init__(self, rows: Iterable[Endpoint]) -> None:
        self.exact: dict[tuple[int | None, str, str], Endpoint] = {}
        self.folded: dict[tuple[int | None, str, str], Endpoint] = {}
        for e in sorted(rows, key=lambda e: e.id or 0):
            self.exact[(e.contact_point_id, e.kind, e.address)] = e
            self.folded.setdefault((e.contact_point_id, e.kind, endpoint_key(e.kind, e.address)), e)

    def find(self, cp_id: int | None, kind: str, address: str) -> Endpoint | None:
        found = self.exact.get((cp_id, kind, address))
        return found if found is not None else self.folded.get((cp_id, kind, endpoint_key(kind, address)))


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


def _remove_unlisted(session: Session, tally: _Tally, data: DirectoryData, wanted_endpoints: set[int | None]) -> None:
    pinged_cps = set(session.exec(select(Ping.contact_point_id).distinct()))
    pinged_eps = {e for e in session.exec(select(Ping.endpoint_id).distinct()) if e is not None}
    cp_codes = {c.code for c in data.contact_points}
    cps = {c.id: c for c in session.exec(select(ContactPoint))}
    kept_cps: set[int | None] = set()
    for ep in sorted(session.exec(select(Endpoint)).all(), key=lambda e: e.id or 0):
        if ep.id in wanted_endpoints:
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
