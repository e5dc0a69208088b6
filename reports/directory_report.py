"""The updated contact directory, published as editions.

Each publication stores a ``DirectoryEdition`` (a snapshot of contact points and
endpoints, and its sha256) and lists what changed since the previous edition. "Last
proven reachable" comes from the endpoints' ``verified_at``/``verified_run_id``, which
the run engine sets when a run proves an endpoint (the ``endpoint.verified`` event).
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict
from sqlalchemy.engine import Engine

from commtest.clock import Clock, SystemClock, ensure_utc
from commtest.db import session_scope
from commtest.models import ContactPoint, DirectoryEdition, Endpoint, Event, FieldOfWork, Organisation

ORG = Organisation.__table__  # type: ignore[attr-defined]
FW = FieldOfWork.__table__  # type: ignore[attr-defined]
CP = ContactPoint.__table__  # type: ignore[attr-defined]
EP = Endpoint.__table__  # type: ignore[attr-defined]
DE = DirectoryEdition.__table__  # type: ignore[attr-defined]
E = Event.__table__  # type: ignore[attr-defined]

# What a change means: these attributes are compared between editions; proofs of
# reachability are not (they change at every test and are shown in their own column).
_CP_ATTRS = ("organisation", "field", "name", "kind", "title", "languages", "active")
_EP_ATTRS = ("priority", "label", "status")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class EndpointEntry(_Frozen):
    kind: str
    address: str
    priority: int
    label: str
    status: str
    verified_at: datetime | None
    verified_run_id: int | None
    last_outcome: str | None = None
    failed_last_run: bool = False  # the last test that used it did not get through


class ContactEntry(_Frozen):
    code: str
    organisation: str
    organisation_name: str
    organisation_names: dict[str, str] = {}
    field: str
    field_name: str
    field_names: dict[str, str] = {}
    name: str
    kind: str
    title: str
    languages: list[str]
    active: bool
    endpoints: list[EndpointEntry]
    last_proven_at: datetime | None
    last_proven_channel: str | None
    last_proven_run_id: int | None


class Change(_Frozen):
    what: Literal["contact_point", "endpoint"]
    change: Literal["added", "removed", "changed", "proven"]
    key: str
    fields: dict[str, list[Any]] = {}  # attribute -> [before, after]


class DirectoryReport(_Frozen):
    report: Literal["directory"] = "directory"
    edition_id: int | None
    previous_edition_id: int | None
    published_at: datetime
    content_hash: str
    contacts: list[ContactEntry]
    changes: list[Change]
    new_edition: bool = True  # False: nothing changed since this (latest) edition


# What an endpoint's last test said, read as "it did not get through".
_FAILED = ("bounced", "invalid_endpoint", "blocked", "delivered_no_ack", "voicemail", "busy", "no_answer", "away",
           "no_record")


def build_directory(engine: Engine, clock: Clock | None = None) -> list[ContactEntry]:
    with engine.connect() as conn:
        cps = conn.execute(
            sa.select(
                CP.c.id, CP.c.code, CP.c.name, CP.c.kind, CP.c.title, CP.c.languages, CP.c.active,
                ORG.c.code.label("org"), ORG.c.name.label("org_name"), ORG.c.names.label("org_names"),
                ORG.c.languages.label("org_languages"),
                FW.c.code.label("field"), FW.c.name.label("field_name"), FW.c.names.label("field_names"),
            )
            .join(ORG, ORG.c.id == CP.c.organisation_id)
            .join(FW, FW.c.id == CP.c.field_id)
            .order_by(ORG.c.code, FW.c.code, CP.c.code)
        ).all()
        endpoints: dict[int, list[Any]] = {}
        for e in conn.execute(sa.select(EP).order_by(EP.c.contact_point_id, EP.c.kind, EP.c.priority, EP.c.address)):
            endpoints.setdefault(e.contact_point_id, []).append(e)
    out = []
    for cp in cps:
        eps = [
            EndpointEntry(
                kind=e.kind, address=e.address, priority=e.priority, label=e.label, status=e.status,
                verified_at=e.verified_at, verified_run_id=e.verified_run_id, last_outcome=e.last_outcome,
                failed_last_run=e.last_outcome in _FAILED,
            )
            for e in endpoints.get(cp.id, [])
        ]
        proven = max((e for e in eps if e.verified_at), key=lambda e: e.verified_at or datetime.min, default=None)
        out.append(
            ContactEntry(
                code=cp.code, organisation=cp.org, organisation_name=cp.org_name,
                organisation_names=dict(cp.org_names or {}), field=cp.field, field_name=cp.field_name,
                field_names=dict(cp.field_names or {}), name=cp.name, kind=cp.kind, title=cp.title,
                languages=list(cp.languages or cp.org_languages or []), active=cp.active, endpoints=eps,
                last_proven_at=proven.verified_at if proven else None,
                last_proven_channel=proven.kind if proven else None,
                last_proven_run_id=proven.verified_run_id if proven else None,
            )
        )
    return out


def snapshot(contacts: list[ContactEntry]) -> dict[str, Any]:
    """What an edition states. Proofs of reachability are part of it (a test that proves an
    endpoint is news for the directory) but are listed apart from the changes."""
    return {
        "contact_points": {c.code: {a: getattr(c, a) for a in _CP_ATTRS} for c in contacts},
        "endpoints": {
            f"{c.code}|{e.kind}|{e.address}": {a: getattr(e, a) for a in _EP_ATTRS}
            for c in contacts
            for e in c.endpoints
        },
        "proofs": {
            f"{c.code}|{e.kind}|{e.address}": [e.verified_at.isoformat() if e.verified_at else None, e.last_outcome]
            for c in contacts
            for e in c.endpoints
        },
    }


def snapshot_hash(snap: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(snap, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Change]:
    if old is None:
        return []
    changes = []
    for section, what in (("contact_points", "contact_point"), ("endpoints", "endpoint")):
        before, after = old.get(section, {}), new.get(section, {})
        for key in sorted(set(before) | set(after)):
            if key not in before:
                changes.append(Change(what=what, change="added", key=key))  # type: ignore[arg-type]
            elif key not in after:
                changes.append(Change(what=what, change="removed", key=key))  # type: ignore[arg-type]
            elif before[key] != after[key]:
                fields = {a: [before[key].get(a), after[key].get(a)] for a in sorted(after[key])
                          if before[key].get(a) != after[key].get(a)}
                changes.append(Change(what=what, change="changed", key=key, fields=fields))  # type: ignore[arg-type]
    old_proofs, new_proofs = old.get("proofs", {}), new.get("proofs", {})
    for key in sorted(new_proofs):
        was, now = old_proofs.get(key), new_proofs[key]
        if was is not None and was != now and now[0] and now[0] != was[0]:
            changes.append(Change(what="endpoint", change="proven", key=key, fields={"verified_at": [was[0], now[0]]}))
    return changes


def publish_directory(engine: Engine, clock: Clock, run_id: int | None = None) -> DirectoryReport:
    """A new edition of the directory when something changed since the previous one (else the
    previous edition, unchanged), with the changes since the one before. Its timestamp is never
    before the last event it reports (a proof recorded "later" by another replica's clock)."""
    contacts = build_directory(engine)
    snap = snapshot(contacts)
    digest = snapshot_hash(snap)
    with session_scope(engine) as session:
        rows = session.execute(sa.select(DE.c.id, DE.c.snapshot, DE.c.content_hash, DE.c.created_at)
                               .order_by(DE.c.id.desc()).limit(2)).all()
        latest = rows[0] if rows else None
        if latest is not None and latest.content_hash == digest:
            before = rows[1] if len(rows) > 1 else None
            return DirectoryReport(
                edition_id=latest.id, previous_edition_id=before.id if before else None, published_at=latest.created_at,
                content_hash=digest, contacts=contacts, changes=diff(before.snapshot if before else None, snap),
                new_edition=False,
            )
        last_event = session.execute(sa.select(sa.func.max(E.c.at))).scalar()
        now = clock.now()
        if last_event is not None:
            now = max(now, ensure_utc(last_event) if isinstance(last_event, datetime) else now)
        edition = DirectoryEdition(created_at=now, run_id=run_id, content_hash=digest, snapshot=snap)
        session.add(edition)
        session.flush()
        edition_id = edition.id
    return DirectoryReport(
        edition_id=edition_id,
        previous_edition_id=latest.id if latest else None,
        published_at=now,
        content_hash=digest,
        contacts=contacts,
        changes=diff(latest.snapshot if latest else None, snap),
    )


def write_directory(
    engine: Engine,
    out_dir: Path,
    formats: tuple[str, ...] = ("html", "csv", "vcard"),
    lang: str = "en",
    clock: Clock | None = None,
) -> list[Path]:
    """Publish a new edition and render it into ``out_dir`` as ``directory-<edition>.<format>``."""
    from reports.render import write_report

    report = publish_directory(engine, clock or SystemClock())
    return write_report(report, Path(out_dir) / f"directory-{report.edition_id}", formats, lang)
