"""Renderers: HTML (self-contained, printable), PDF (WeasyPrint), CSV per table, JSON, vCard."""
from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from commtest.errors import CommtestError
from reports.charts import trend_charts
from reports.directory_report import DirectoryReport
from reports.i18n import Translator
from reports.monthly import MonthlyView
from reports.test_report import TestReport

AnyReport = Union[TestReport, MonthlyView, DirectoryReport]
FORMATS = ("html", "pdf", "csv", "json", "vcard")
JSON_FORMAT = "commtest-report/1"
MAX_PRINTED_ROWS = 60


class FormatNotAvailable(CommtestError):
    exit_code = 2


def formats_for(report_kind: str) -> tuple[str, ...]:
    return FORMATS if report_kind == "directory" else FORMATS[:-1]


def check_format(report_kind: str, fmt: str) -> None:
    allowed = formats_for(report_kind)
    if fmt not in allowed:
        raise FormatNotAvailable(
            f"--format {fmt}: not available for the {report_kind} report; use one of {', '.join(allowed)}"
        )


_env = Environment(
    loader=PackageLoader("reports", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _kind(report: AnyReport) -> str:
    return report.report


def _zone(report: AnyReport, default: str) -> str:
    if isinstance(report, TestReport):
        return report.timezone
    if isinstance(report, MonthlyView):
        return report.figures.timezone
    return default


def render_html(report: AnyReport, lang: str = "en", timezone: str = "Europe/Brussels") -> str:
    t = Translator(lang, _zone(report, timezone))
    context: dict[str, Any] = {"r": report, "t": t, "lang": lang}
    if isinstance(report, MonthlyView):
        context["charts"] = trend_charts(report.figures.trend, t)
        # A signed PDF is read by people: long listings stay complete in CSV and JSON.
        context["max_rows"] = MAX_PRINTED_ROWS
    return _env.get_template(f"{_kind(report)}.html.j2").render(**context)


def render_pdf(html: str) -> bytes:
    from weasyprint import HTML  # heavy import (pango): only when a PDF is asked for

    pdf: bytes = HTML(string=html).write_pdf()
    return pdf


def render_json(report: AnyReport) -> str:
    data = {"format": JSON_FORMAT, **report.model_dump(mode="json")}
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n"


Table = tuple[list[str], list[list[Any]]]


def tables(report: AnyReport) -> dict[str, Table]:
    """Every table of a report, for CSV (one file each)."""
    if isinstance(report, TestReport):
        return {
            "verdicts": _rows(report.verdicts, ["organisation", "channel", "verdict", "target_ms", "contact_points", "in_target", "gaps"]),
            "outcomes": (["outcome", "count"], [[k, v] for k, v in report.outcome_counts.items()]),
            "pings": _rows(report.pings, list(type(report.pings[0]).model_fields) if report.pings else ["ping_id"]),
            "timeline": _rows(report.timeline, ["at", "kind", "organisation", "channel", "contact_point", "outcome", "detail"]),
            "observations": _rows(report.observations, ["at", "kind", "ping_id", "organisation", "channel", "contact_point", "detail"]),
            "action_points": _rows(report.action_points, ["kind", "organisation", "channel", "contact_point", "address", "reason"]),
            "directory_changes": _rows(report.directory_changes, ["at", "endpoint_id", "contact_point", "channel", "address", "change"]),
        }
    if isinstance(report, MonthlyView):
        f = report.figures
        stats = ["pings", "acknowledged", "ack_rate", "median_ms", "p90_ms"]
        return {
            "runs": _rows(f.runs, ["id", "playbook_id", "status", "trigger", "announced", "fire_at", "pings", "acknowledged"]),
            "outcomes": (["outcome", "count"], [[k, v] for k, v in f.outcome_counts.items()]),
            "per_org_channel": _rows(f.per_org_channel, ["organisation", "channel", *stats, "breaches"]),
            "breaches": _rows(f.breaches, ["run_id", "organisation", "channel", "verdict", "target_ms", "contact_points", "in_target"]),
            "trend": _rows(f.trend, ["month", "runs", *stats]),
            "action_points": _rows(f.action_points, ["organisation", "channel", "contact_point", "address", "reason", "since"]),
        }
    contacts = [
        [c.organisation, c.field, c.code, c.name, " ".join(c.languages), e.kind, e.address, e.priority, e.status,
         _cell(e.verified_at), e.verified_run_id]
        for c in report.contacts
        for e in (c.endpoints or [None])  # type: ignore[list-item]
        if e is not None
    ] + [
        [c.organisation, c.field, c.code, c.name, " ".join(c.languages), "", "", "", "", "", ""]
        for c in report.contacts
        if not c.endpoints
    ]
    return {
        "contacts": (
            ["organisation", "field", "contact_point", "name", "languages", "channel", "address", "priority",
             "status", "verified_at", "verified_run_id"],
            contacts,
        ),
        "changes": _rows(report.changes, ["what", "change", "key", "detail"]),
    }


def _cell(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _rows(items: Sequence[Any], columns: list[str]) -> Table:
    return columns, [[_cell(getattr(item, c)) for c in columns] for item in items]


def write_csv(report: AnyReport, base: Path) -> list[Path]:
    paths = []
    for name, (header, rows) in tables(report).items():
        path = base.parent / f"{base.name}.{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
        paths.append(path)
    return paths


def render_to(report: AnyReport, fmt: str, path: Path, lang: str = "en", timezone: str = "Europe/Brussels") -> list[Path]:
    """Write ``report`` in ``fmt`` to ``path`` (CSV: one file per table beside it)."""
    check_format(_kind(report), fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Callable[[], list[Path]]] = {
        "html": lambda: _write_text(path, render_html(report, lang, timezone)),
        "pdf": lambda: _write_bytes(path, render_pdf(render_html(report, lang, timezone))),
        "json": lambda: _write_text(path, render_json(report)),
        "csv": lambda: write_csv(report, path.with_suffix("") if path.suffix == ".csv" else path),
        "vcard": lambda: _write_text(path, _vcards(report)),
    }
    return writers[fmt]()


def _vcards(report: AnyReport) -> str:
    from reports.vcard import directory_vcards

    assert isinstance(report, DirectoryReport)
    return directory_vcards(report.contacts)


_SUFFIX = {"html": ".html", "pdf": ".pdf", "json": ".json", "csv": ".csv", "vcard": ".vcf"}


def default_path(base: Path, fmt: str) -> Path:
    return base.parent / f"{base.name}{_SUFFIX[fmt]}"


def write_report(report: AnyReport, base: Path, formats: Sequence[str], lang: str = "en") -> list[Path]:
    paths: list[Path] = []
    for fmt in formats:
        paths.extend(render_to(report, fmt, default_path(base, fmt), lang))
    return paths


def _write_text(path: Path, text: str) -> list[Path]:
    path.write_text(text, encoding="utf-8")
    return [path]


def _write_bytes(path: Path, data: bytes) -> list[Path]:
    path.write_bytes(data)
    return [path]
