"""Export the directory (YAML or CSV, re-importable as is) and snapshot it for reports.

Everything is sorted by code (endpoints by priority, kind, address), never by row id,
so an export does not depend on the order rows were created in: export, import into a
fresh database and export again gives the same text.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from commtest.db import read_session
from commtest.models import (
    ChannelKind,
    ContactPoint,
    Endpoint,
    FieldOfWork,
    Organisation,
)

from .load import CSV_COLUMNS

_KIND_ORDER = {k.value: i for i, k in enumerate(ChannelKind)}
YAML_HEADER = (
    "commtest contact directory. Edit by hand, then: commtest directory import FILE [--replace]\n"
    "The format is described in docs/directory.md.\n"
)


@dataclass(frozen=True)
class _Rows:
    fields: list[FieldOfWork]
    organisations: list[Organisation]
    contact_points: dict[int, list[ContactPoint]]  # by organisation id
    endpoints: dict[int, list[Endpoint]]  # by contact point id
    field_code: dict[int, str]


def _rows(session: Session) -> _Rows:
    fields = list(session.exec(select(FieldOfWork).order_by(FieldOfWork.code)).all())
    orgs = list(session.exec(select(Organisation).order_by(Organisation.code)).all())
    cps: dict[int, list[ContactPoint]] = {}
    for cp in session.exec(select(ContactPoint).order_by(ContactPoint.code)).all():
        cps.setdefault(cp.organisation_id, []).append(cp)
    eps: dict[int, list[Endpoint]] = {}
    for ep in session.exec(select(Endpoint)).all():
        eps.setdefault(ep.contact_point_id, []).append(ep)
    for items in eps.values():
        items.sort(key=lambda e: (e.priority, _KIND_ORDER.get(e.kind, 99), e.address))
    return _Rows(fields, orgs, cps, eps, {f.id: f.code for f in fields if f.id is not None})


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def snapshot(session: Session) -> dict[str, Any]:
    """The whole directory as a JSON-able dict, sorted; what reports and editions store."""
    rows = _rows(session)
    orgs = []
    for org in rows.organisations:
        cps = []
        for cp in rows.contact_points.get(org.id or 0, []):
            eps = [
                {"kind": e.kind, "address": e.address, "priority": e.priority, "label": e.label,
                 "status": e.status, "verified_at": _iso(e.verified_at), "verified_run_id": e.verified_run_id,
                 "last_outcome": e.last_outcome, "last_outcome_at": _iso(e.last_outcome_at)}
                for e in rows.endpoints.get(cp.id or 0, [])
            ]
            cps.append(
                {"code": cp.code, "field": rows.field_code[cp.field_id], "name": cp.name, "kind": cp.kind,
                 "title": cp.title, "languages": list(cp.languages), "timezone": cp.timezone,
                 "active": cp.active, "notes": cp.notes, "endpoints": eps}
            )
        orgs.append(
            {"code": org.code, "name": org.name, "names": dict(sorted((org.names or {}).items())), "country": org.country, "languages": list(org.languages),
             "timezone": org.timezone, "role": org.role, "notes": org.notes, "contact_points": cps}
        )
    fields = [{"code": f.code, "name": f.name, "names": dict(sorted(f.names.items()))} for f in rows.fields]
    return {"fields_of_work": fields, "organisations": orgs}


def export_directory(engine: Engine, fmt: Literal["yaml", "csv"] = "yaml") -> str:
    """The directory as a file that ``import_directory`` reads back to the same directory."""
    with read_session(engine) as session:
        snap = snapshot(session)
    if fmt == "yaml":
        return _yaml(snap)
    if fmt == "csv":
        return _csv(snap)
    raise ValueError(f"unknown export format {fmt!r}; expected yaml or csv")


def _yaml(snap: dict[str, Any]) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    def flow(items: list[str]) -> CommentedSeq:
        seq = CommentedSeq(items)
        seq.fa.set_flow_style()
        return seq

    def mapping(values: dict[str, Any], skip_empty: tuple[str, ...] = ()) -> CommentedMap:
        return CommentedMap((k, v) for k, v in values.items() if not (k in skip_empty and v in ("", None, {}, [])))

    fields = []
    for f in snap["fields_of_work"]:
        fields.append(mapping({"code": f["code"], "name": f["name"], "names": CommentedMap(f["names"])}, ("names",)))
    orgs = []
    for o in snap["organisations"]:
        cps = []
        for c in o["contact_points"]:
            eps = [
                mapping({k: e[k] for k in ("kind", "address", "priority", "label", "status", "verified_at")},
                        ("label", "verified_at"))
                for e in c["endpoints"]
            ]
            cp = {k: c[k] for k in ("code", "field", "name", "kind", "title")}
            cp.update(languages=flow(c["languages"]), timezone=c["timezone"], active=c["active"], notes=c["notes"])
            cp["endpoints"] = eps
            cps.append(mapping(cp, ("title", "languages", "timezone", "notes", "endpoints")))
        org = {k: o[k] for k in ("code", "name")}
        org.update(names=CommentedMap(o.get("names") or {}), country=o["country"], languages=flow(o["languages"]),
                   timezone=o["timezone"], role=o["role"], notes=o["notes"])
        org["contact_points"] = cps
        orgs.append(mapping(org, ("names", "notes", "contact_points")))
    doc = CommentedMap([("fields_of_work", fields), ("organisations", orgs)])
    doc.yaml_set_start_comment(YAML_HEADER)
    yaml = YAML(typ="rt")
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _csv(snap: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    fields = {f["code"]: f for f in snap["fields_of_work"]}
    used: set[str] = set()

    def field_cols(code: str) -> dict[str, str]:
        f = fields[code]
        used.add(code)
        return {"field": code, "field_name": f["name"],
                "field_names": "; ".join(f"{k}={v}" for k, v in f["names"].items())}

    for o in snap["organisations"]:
        org = {"organisation_code": o["code"], "organisation_name": o["name"], "country": o["country"],
               "organisation_languages": ";".join(o["languages"]), "organisation_timezone": o["timezone"],
               "organisation_role": o["role"], "organisation_notes": o["notes"],
               "organisation_names": "; ".join(f"{k}={v}" for k, v in (o.get("names") or {}).items())}
        if not o["contact_points"]:
            writer.writerow(org)
        for c in o["contact_points"]:
            cp = {**org, **field_cols(c["field"]), "contact_point_code": c["code"], "contact_point_name": c["name"],
                  "contact_point_kind": c["kind"], "title": c["title"], "languages": ";".join(c["languages"]),
                  "active": "true" if c["active"] else "false", "contact_point_timezone": c["timezone"] or "",
                  "contact_point_notes": c["notes"]}
            if not c["endpoints"]:
                writer.writerow(cp)
            for e in c["endpoints"]:
                writer.writerow({**cp, "endpoint_kind": e["kind"], "address": e["address"],
                                 "priority": e["priority"], "label": e["label"], "status": e["status"],
                                 "verified_at": e["verified_at"] or ""})
    for code in sorted(set(fields) - used):  # a field nobody works in yet still belongs to the directory
        writer.writerow(field_cols(code))
    return out.getvalue()
