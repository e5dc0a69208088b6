"""``report verify``: recompute every number of a report's JSON file from the event log.

The file's figures are flattened to paths (``per_org_channel[2].median_ms``) and compared
with a fresh computation; a signed monthly report is recomputed too, not read back from
its stored figures, so an edit of the file *or* a rewrite of history shows.
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


def verify_report(engine: Engine, path: Path) -> list[Difference]:
    """Every value in the file that the event log does not give back (empty: they all match)."""
    data = load_report_file(path)
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
