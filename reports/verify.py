"""``report verify``: recompute every number of a report's JSON file from the event log.

The file's figures are flattened to paths and compared with a fresh computation from the
event log. Lists are compared **by identity**, not by position: a timeline entry by its event
id (``timeline[event 123].kind``), an attempt by its ping id, a check by its organisation,
contact point and channel, a verdict by organisation and channel, a month by its name. So one
event that arrived after the report shows as that one event ("added after the report"), not as
every later position shifting. For a closed run, the check facts stored when it closed are
compared with the ones the log gives (``stored facts``). What a test report states about the
directory as it is now (``directory_state``) is not from the log and is not compared.

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
    kind: str = "differs"  # differs | added (an event the report predates) | stored (stored facts vs the log)

    def __str__(self) -> str:
        if self.kind == "added":
            return f"{self.path}: added after the report: {self.recomputed}"
        if self.kind == "stored":
            return f"{self.path}: the facts stored at close say {self.in_file!r}, the event log gives {self.recomputed!r}"
        return f"{self.path}: file says {self.in_file!r}, the event log gives {self.recomputed!r}"


# The fields that identify an item of a list, tried in order.
_IDENTITY = (("event_id",), ("ping_id",), ("run_id", "organisation", "channel"),
             ("kind", "organisation", "channel", "contact_point", "address"),
             ("organisation", "contact_point_code", "channel"), ("organisation", "channel"), ("month",), ("id",))


def _identity(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    for keys in _IDENTITY:
        if all(k in item for k in keys):
            if keys == ("event_id",):
                return f"event {item['event_id']}"
            if keys == ("ping_id",):
                return f"ping {item['ping_id']}"
            return "/".join(str(item[k]) for k in keys)
    return None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        ids = [_identity(v) for v in value]
        by_identity = all(ids) and len(set(ids)) == len(ids)
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{ids[i] if by_identity else i}]"))
        return out
    return {prefix: value}


_NOT_FROM_THE_LOG = ("directory_state", "figures.organisations", "figures.fields", "figures.stale_after_days",
                     "figures.stale_endpoints")


def _compared(path: str) -> bool:
    return not any(path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in _NOT_FROM_THE_LOG)


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
    stale_after_days = figures.get("stale_after_days", 180)
    return {"figures": compute_monthly_figures(
        engine, month, zone, stale_after_days=stale_after_days if isinstance(stale_after_days, int) else 180,
    ).model_dump(mode="json")}


def _signed_reference(engine: Engine, data: dict[str, Any]) -> tuple[dict[str, Any], list[Difference]]:
    """The frozen figures and signature of a month, with any difference in the signature itself."""
    from sqlmodel import select

    from commtest.db import read_session
    from commtest.models import Event, MonthlyReport
    from reports.monthly import content_hash

    month = data.get("figures", {}).get("month")
    diffs: list[Difference] = []
    with read_session(engine) as s:
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
    recomputed = recompute(engine, data)
    fresh = {k: v for k, v in flatten(recomputed).items() if _compared(k)}
    scope = ("figures.",) if data["report"] == "monthly" else ("",)
    in_file = {k: v for k, v in flatten(data).items() if k.startswith(scope) and k != "format" and _compared(k)}
    diffs = _added_events(in_file, fresh, recomputed)
    added = {d.path for d in diffs}
    for key in sorted(set(in_file) | set(fresh)):
        if any(key.startswith(p + ".") for p in added):
            continue
        a, b = in_file.get(key), fresh.get(key)
        # Every leaf is derived from the log (verdicts and outcomes too), so all must match.
        if a != b or type(a) is not type(b) and not (_is_number(a) and _is_number(b)):
            diffs.append(Difference(key, a, b))
    if data["report"] == "test":
        diffs.extend(stored_fact_differences(engine, int(data["run"]["id"])))
    return diffs


def _added_events(in_file: dict[str, Any], fresh: dict[str, Any], recomputed: dict[str, Any]) -> list[Difference]:
    """Timeline entries (and directory changes) the log has and the file does not: events that
    arrived after the report was written, listed once each."""
    out = []
    for section in ("timeline", "directory_changes"):
        have = {k.split("]")[0] + "]" for k in in_file if k.startswith(f"{section}[event ")}
        for item in recomputed.get(section, []):
            path = f"{section}[event {item['event_id']}]"
            if path not in have:
                out.append(Difference(path, None, f"event {item['event_id']} {item['kind']} at {item['at']}", "added"))
    return out


def stored_fact_differences(engine: Engine, run_id: int) -> list[Difference]:
    """For a closed run: where the check and verdict facts stored at close differ from the log."""
    from dataclasses import asdict

    from commtest.facts import facts_of_run, normalised, stored_facts
    from commtest.models import RunStatus, TestRun
    from reports.playbook_facts import playbook_facts
    from sqlmodel import Session

    with engine.connect() as conn:
        with Session(bind=conn) as s:
            run = s.get(TestRun, run_id)
            if run is None or run.status not in (RunStatus.completed.value, RunStatus.aborted.value):
                return []
            from commtest.models import PlaybookRevision

            rev = s.get(PlaybookRevision, run.revision_id)
            assert rev is not None
            rules = playbook_facts(rev.source_text, revision_id=rev.id).rules
        derived = normalised(facts_of_run(conn, run_id, rules))
        stored = stored_facts(conn, run_id)
    def keyed(facts: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in facts.checks:
            for k, v in asdict(c).items():
                out[f"checks[{c.organisation_code}/{c.contact_point_id}/{c.channel}].{k}"] = v
        for v in facts.verdicts:
            for k, val in asdict(v).items():
                out[f"verdicts[{v.organisation_code}/{v.channel}].{k}"] = val
        return out
    a, b = keyed(stored), keyed(derived)
    return [Difference(f"stored facts: {k}", a.get(k), b.get(k), "stored") for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]
