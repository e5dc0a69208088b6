"""``report verify``: recompute every number of a report's JSON file from the event log.

The file's figures are flattened to paths (``per_org_channel[2].median_ms``) and compared
with a fresh computation from the event log.

A *signed* monthly report is frozen: its figures are compared with the figures stored at
signature time (whose sha256 must still be the one the ``report.signed`` event recorded),
and its signature (who, when, comment, hash) with the database. Events that arrived for
that month after the signature do not make an unedited signed file fail; ``signed_drift``
says how many numbers the log would now give differently.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from commtest.errors import CommtestError
from reports.render import JSON_FORMAT


class NotAReport(CommtestError):
    exit_code = 2


class ReportMismatch(CommtestError):
    """The file's numbers are not what the event log gives (exit 1: the check failed)."""


@dataclass(frozen=True)
class Difference:
    path: str
    in_file: Any
    recomputed: Any

    def __str__(self) -> str:
        return f"{self.path}: file says {self.in_file!r}, the event log gives {self.recomputed!r}"


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_report_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotAReport(f"{path}: no such file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NotAReport(f"{path}: not a commtest report (not JSON: {exc})") from exc
    if not isinstance(data, dict) or data.get("format") != JSON_FORMAT or data.get("report") not in ("test", "monthly"):
        raise NotAReport(
            f"{path}: not a commtest test or monthly report (expected \"format\": \"{JSON_FORMAT}\"); "
            "write one with `commtest report test|monthly ... --format json`"
        )
    return data


def recompute(engine: Engine, data: dict[str, Any]) -> dict[str, Any]:
    if data["report"] == "test":
        from reports.test_report import build_test_report

        run_id = data.get("run", {}).get("id")
        if not isinstance(run_id, int):
            raise NotAReport("the file names no run (run.id)")
        fresh: dict[str, Any] = build_test_report(engine, run_id).model_dump(mode="json")
        return fresh
    from reports.monthly_figures import compute_monthly_figures

    figures = data.get("figures", {})
    month, zone = figures.get("month"), figures.get("timezone")
    if not isinstance(month, str) or not isinstance(zone, str):
        raise NotAReport("the file names no month (figures.month, figures.timezone)")
    return {"figures": compute_monthly_figures(engine, month, zone).model_dump(mode="json")}


def _signed_reference(engine: Engine, data: dict[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
    """The frozen figures and signature of a month, with any difference in the signature itself."""
    from sqlmodel import select

    from commtest.db import session_scope
    from commtest.models import Event, MonthlyReport
    from reports.monthly import content_hash

    month = data.get("figures", {}).get("month")
    diffs: list[Difference] = []
    with session_scope(engine) as s:
        row = s.exec(select(MonthlyReport).where(MonthlyReport.month == month)).first()
        if row is None or row.status != "signed":
            return {}, [Difference("status", data.get("status"), row.status if row else None)]
        event = s.exec(select(Event).where(Event.kind == "report.signed").order_by(Event.id.desc())  # type: ignore[union-attr]
                       ).all()
        signed = next((e for e in event if e.data.get("month") == month), None)
        stored_hash = content_hash(row.data)
        if stored_hash != row.content_hash or (signed is not None and signed.data.get("content_hash") != stored_hash):
            diffs.append(Difference("content_hash (stored figures)", row.content_hash, stored_hash))
        expected = {
            "content_hash": row.content_hash,
            "signed_by": row.signed_by,
            "signed_at": row.signed_at.isoformat() if row.signed_at else None,
            "comment": row.comment,
        }
        for key, value in expected.items():
            got = data.get(key)
            if key == "signed_at" and isinstance(got, str) and value is not None:
                from datetime import datetime

                try:
                    same = datetime.fromisoformat(got) == datetime.fromisoformat(value)
                except ValueError:
                    same = False
                if same:
                    continue
            if got != value:
                diffs.append(Difference(key, got, value))
        return {"figures": row.data}, diffs


def signed_drift(engine: Engine, path: Path) -> int:
    """For a signed monthly report: how many numbers the event log now gives differently
    (events that arrived for the month after the signature). 0 otherwise."""
    data = load_report_file(path)
    if data["report"] != "monthly" or data.get("status") != "signed":
        return 0
    frozen, _ = _signed_reference(engine, data)
    if not frozen:
        return 0
    fresh = flatten(recompute(engine, data))
    old = flatten(frozen)
    return sum(1 for k in set(fresh) | set(old) if fresh.get(k) != old.get(k))


def verify_report(engine: Engine, path: Path) -> list[Difference]:
    """Every value in the file that the event log does not give back (empty: they all match)."""
    data = load_report_file(path)
    if data["report"] == "monthly" and (data.get("status") == "signed" or data.get("signed_by")):
        frozen, diffs = _signed_reference(engine, data)
        if not frozen:
            return diffs
        reference = flatten(frozen)
        in_file = {k: v for k, v in flatten(data).items() if k.startswith("figures.")}
        for key in sorted(set(in_file) | set(reference)):
            a, b = in_file.get(key), reference.get(key)
            if a != b or type(a) is not type(b) and not (_is_number(a) and _is_number(b)):
                diffs.append(Difference(key, a, b))
        return diffs
    fresh = flatten(recompute(engine, data))
    scope = ("figures.",) if data["report"] == "monthly" else ("",)
    in_file = {k: v for k, v in flatten(data).items() if k.startswith(scope) and k != "format"}
    diffs = []
    for key in sorted(set(in_file) | set(fresh)):
        a, b = in_file.get(key), fresh.get(key)
        # Every leaf is derived from the log (verdicts and outcomes too), so all must match.
        if a != b or type(a) is not type(b) and not (_is_number(a) and _is_number(b)):
            diffs.append(Difference(key, a, b))
    return diffs
