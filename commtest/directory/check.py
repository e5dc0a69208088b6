"""``directory check``: the gaps that would make a communication test fail for a known reason.

The kernel does not import the ``playbooks`` package: callers turn playbooks into
``Requirement`` values (the CLI does it lazily), and ``find_gaps`` is a pure function
of the directory snapshot, the requirements and ``now``.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlmodel import Session

from commtest.clock import parse_instant

from .export import snapshot

GapKind = Literal["no-contact-point", "missing-channel", "not-verified", "never-verified", "suspect", "invalid",
                  "blocked"]


@dataclass(frozen=True)
class Requirement:
    """A playbook needs an active contact point of (organisation, field) reachable on ``channels``."""

    organisation_code: str
    field_code: str
    channels: frozenset[str]
    playbook_id: str


@dataclass(frozen=True)
class Gap:
    kind: GapKind
    organisation_code: str
    field_code: str | None
    message: str
    contact_point_code: str | None = None
    endpoint: str | None = None  # "kind address"
    playbook_id: str | None = None

    def __str__(self) -> str:
        where = self.contact_point_code or f"{self.organisation_code} {self.field_code or ''}".strip()
        return f"{where}: {self.message}"


def check_directory(
    session: Session, requirements: Iterable[Requirement], *, now: datetime, max_age_days: int
) -> list[Gap]:
    return find_gaps(snapshot(session), requirements, now=now, max_age_days=max_age_days)


def find_gaps(
    snap: dict[str, Any], requirements: Iterable[Requirement], *, now: datetime, max_age_days: int
) -> list[Gap]:
    """Every gap: requirement gaps first, then participants' uncovered fields, then endpoint
    gaps, in directory order."""
    gaps: list[Gap] = []
    orgs = {o["code"]: o for o in snap["organisations"]}
    merged = _merged(requirements)
    for req in merged:
        org = orgs.get(req.organisation_code)
        cps = [c for c in (org or {}).get("contact_points", []) if c["field"] == req.field_code and c["active"]]
        if not cps:
            missing = "is not in the directory" if org is None else f"has no active contact point for {req.field_code}"
            gaps.append(Gap("no-contact-point", req.organisation_code, req.field_code,
                            f"{req.organisation_code} {missing} (needed by playbook {req.playbook_id})",
                            playbook_id=req.playbook_id))  # fmt: skip
            continue
        for cp in cps:
            have = {e["kind"] for e in cp["endpoints"] if e["status"] == "active"}
            for channel in sorted(req.channels - have):
                gaps.append(Gap("missing-channel", req.organisation_code, req.field_code,
                                f"no active {channel} endpoint (needed by playbook {req.playbook_id})",
                                contact_point_code=cp["code"], playbook_id=req.playbook_id))  # fmt: skip
    gaps.extend(_uncovered_fields(snap, {(r.organisation_code, r.field_code) for r in merged}))
    limit = now - timedelta(days=max_age_days)
    for org in snap["organisations"]:
        for cp in org["contact_points"]:
            if not cp["active"]:
                continue
            for e in cp["endpoints"]:
                gap = _endpoint_gap(e, limit, max_age_days)
                if gap:
                    kind, message = gap
                    gaps.append(Gap(kind, org["code"], cp["field"], message, contact_point_code=cp["code"],
                                    endpoint=f"{e['kind']} {e['address']}"))  # fmt: skip
    return gaps


def _uncovered_fields(snap: dict[str, Any], required: set[tuple[str, str]]) -> list[Gap]:
    """A participant is expected to be reachable in every field of work of the directory:
    one without an active contact point is a gap even before a playbook needs it (those a
    playbook needs were said above, with the playbook)."""
    gaps: list[Gap] = []
    for org in snap["organisations"]:
        if org["role"] != "participant":
            continue
        covered = {cp["field"] for cp in org["contact_points"] if cp["active"]}
        for f in snap["fields_of_work"]:
            if f["code"] in covered or (org["code"], f["code"]) in required:
                continue
            message = f"{org['code']} has no active contact point for {f['code']} (no playbook requires it yet)"
            gaps.append(Gap("no-contact-point", org["code"], f["code"], message))
    return gaps


def _endpoint_gap(e: dict[str, Any], limit: datetime, max_age_days: int) -> tuple[GapKind, str] | None:
    what = f"{e['kind']} {e['address']}"
    if e["status"] == "blocked":
        return "blocked", (f"{what} is blocked: the number replied STOP; ask the centre to send START from it, or to "
                           "give another number")
    if e["status"] in ("suspect", "invalid"):
        why = f" (last outcome: {e['last_outcome']})" if e.get("last_outcome") else ""
        return e["status"], f"{what} is marked {e['status']}{why}; correct or remove it"
    if e["verified_at"] is None:
        return "never-verified", f"{what} was never verified"
    verified = parse_instant(e["verified_at"])
    if verified < limit:
        return "not-verified", (
            f"{what} not verified for more than {max_age_days} days (last on {verified:%Y-%m-%d})"
        )
    return None


def _merged(requirements: Iterable[Requirement]) -> list[Requirement]:
    """One requirement per (organisation, field, playbook); channels united; stable order."""
    out: dict[tuple[str, str, str], Requirement] = {}
    for r in requirements:
        key = (r.organisation_code, r.field_code, r.playbook_id)
        known = out.get(key)
        out[key] = r if known is None else Requirement(*key[:2], known.channels | r.channels, r.playbook_id)
    return sorted(out.values(), key=lambda r: (r.organisation_code, r.field_code, r.playbook_id))
