"""Renderers: HTML (self-contained, printable), PDF (WeasyPrint), CSV per table, JSON, vCard."""
from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Union

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from commtest.errors import CommtestError
from commtest.vocabulary import ENDPOINT_STATUSES
from reports.charts import trend_charts
from reports.directory_report import DirectoryReport
from reports.i18n import ReportTexts
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
    t = ReportTexts(lang, _zone(report, timezone))
    context: dict[str, Any] = {"r": report, "t": t, "lang": lang, **t.jinja_globals()}
    if isinstance(report, TestReport):
        context.update(test_context(report, t))
    elif isinstance(report, MonthlyView):
        context.update(monthly_context(report, t))
    else:
        context.update(directory_context(report, t))
    return _env.get_template(f"{_kind(report)}.html.j2").render(**context)


def test_context(report: TestReport, t: ReportTexts) -> dict[str, Any]:
    """The summary matrix (organisations × channels) and the sentence above it."""
    known = report.directory_state.organisations
    orgs: dict[str, str] = {}
    for cell in report.matrix:
        names = known.get(cell.organisation, {})
        orgs.setdefault(cell.organisation, t.localised(names.get("", cell.organisation), names))
    fields = {code: t.localised(names.get("", code), names) for code, names in report.directory_state.fields.items()}
    channels = list(dict.fromkeys(c.channel for c in sorted(report.matrix, key=lambda c: _CHANNEL_ORDER.get(c.channel, 9))))
    cells = {(c.organisation, c.channel): c for c in report.matrix}
    targets = {c.channel: c.target_ms for c in report.matrix if c.target_ms}
    return {
        "matrix_orgs": [{"code": code, "name": name} for code, name in orgs.items()],
        "matrix_channels": channels,
        "cells": cells,
        "targets": targets,
        "org_names": {**{code: t.localised(n.get("", code), n) for code, n in known.items()}, **orgs},
        "field_names": fields,
        "summary_sentence": summary_sentence(report, t, orgs),
    }


_CHANNEL_ORDER = {"email": 0, "voice": 1, "sms": 2, "video": 3, "cap": 4, "manual": 5}


def summary_sentence(report: TestReport, t: ReportTexts, orgs: dict[str, str]) -> str:
    s = report.summary
    if not s.checks:
        return t("Nothing was checked in this run.")
    by_org: dict[str, list[str]] = {}
    for c in report.matrix:
        by_org.setdefault(c.organisation, []).append(c.verdict)
    all_pass = sum(1 for verdicts in by_org.values() if all(v == "pass" for v in verdicts))
    # The verb agrees with the first number ("1 organisation sur 4 a réussi", "2 … ont réussi").
    parts = [t.n("%(passed)s of %(total)s organisations passed on every channel.",
                 "%(passed)s of %(total)s organisations passed on every channel.", all_pass, passed=all_pass,
                 total=len(by_org))]
    parts.append(t.n("%(answered)s of %(total)s checks was answered, %(in_target)s within their target.",
                     "%(answered)s of %(total)s checks were answered, %(in_target)s within their target.", s.answered,
                     answered=s.answered, total=s.counted, in_target=s.passed))
    if s.not_tested:
        parts.append(t.n("%(n)s check could not be made because our side failed.",
                         "%(n)s checks could not be made because our side failed.", s.not_tested))
    if report.run.status == "running":
        parts.insert(0, t("The test is still running."))
    elif report.run.status == "aborted":
        parts.insert(0, t("The test was called off before it ended."))
    if s.simulated:
        parts.append(t("SIMULATED: a sandbox answered for the officers; this run is not evidence."))
    return " ".join(parts)


def month_label(month: str, lang: str, short: bool = False) -> str:
    from datetime import date

    from babel.dates import format_date

    year, mon = (int(x) for x in month.split("-"))
    locale = "en_GB" if lang == "en" else lang
    return format_date(date(year, mon, 1), "MMM yy" if short else "LLLL yyyy", locale=locale)


def monthly_context(view: MonthlyView, t: ReportTexts) -> dict[str, Any]:
    f = view.figures
    label = lambda month, short=False: month_label(month, t.language, short)  # noqa: E731
    return {
        "month_name": label(f.month),
        "month_label": label,
        "charts": trend_charts(f.trend, t, label),
        "trend_rows": [p for p in f.trend if p.checks or p.runs],
        # A signed PDF is read by people: long listings stay complete in CSV and JSON.
        "max_rows": MAX_PRINTED_ROWS,
        "org_name": lambda code: _named(t, f.organisations, code),
        "field_name": lambda code: _named(t, f.fields, code) if code else "–",
        "points": f.action_points + f.stale_endpoints,
        "advice": lambda a: t.advice(a.kind, a.reason, _month_detail(a), template=a.template, channel=a.channel),
        "summary_paragraph": monthly_summary(view, t, label(f.month)),
    }


def _named(t: ReportTexts, names: dict[str, dict[str, str]], code: str) -> str:
    """The name of an organisation or a field of work in the reader's language, else its code."""
    known = names.get(code, {})
    return t.localised(known.get("", code), known)


def _month_detail(point: Any) -> str:
    """What the sentence of a monthly action point needs besides its outcome."""
    if point.kind == "repeated_failure":
        return str(point.failures)
    if point.kind == "stale_endpoint":
        return point.since.isoformat() if point.since else ""
    if point.kind == "fix_template":
        return str(point.detail)
    return str(point.reason)


def monthly_summary(view: MonthlyView, t: ReportTexts, month_name: str) -> str:
    f = view.figures
    completed = [r for r in f.runs if r.status == "completed" and not r.simulated]
    if not f.totals.checks:
        text = t("No test with real answers ran in %(month)s.", month=month_name)
    else:
        text = t.n("In %(month)s, %(n)s test checked the centres:", "In %(month)s, %(n)s tests checked the centres:",
                   len(completed), month=month_name)
        text += " " + t("%(answered)s of %(checks)s checks were answered (%(rate)s), %(in_target)s within target "
                        "(%(target_rate)s); the median response time was %(median)s.",
                        answered=t.number(f.totals.answered), checks=t.number(f.totals.checks),
                        rate=t.percent(f.totals.ack_rate), in_target=t.number(f.totals.in_target),
                        target_rate=t.percent(f.totals.in_target_rate), median=t.duration(f.totals.median_ms))
        if f.breaches:
            text += " " + t.n("%(n)s organisation-channel verdict failed.", "%(n)s organisation-channel verdicts failed.",
                              len(f.breaches))
    open_points = len(f.action_points) + len(f.stale_endpoints)
    if open_points:
        text += " " + t.n("%(n)s action point is open.", "%(n)s action points are open.", open_points)
    if f.simulated.checks:
        text += " " + t("Simulated checks are counted apart and are not evidence.")
    return text


def directory_context(report: DirectoryReport, t: ReportTexts) -> dict[str, Any]:
    groups: dict[str, list[Any]] = {}
    for c in report.contacts:
        org = f"{t.localised(c.organisation_name, c.organisation_names)} ({c.organisation})"
        groups.setdefault(org, []).append(c)
    changes = {"added": t("added"), "removed": t("removed"), "changed": t("changed"), "proven": t("proven reachable")}
    attrs = {"name": t("name"), "kind": t("kind"), "title": t("title"), "languages": t("languages"),
             "active": t("active"), "organisation": t("organisation"), "field": t("field of work"),
             "priority": t("priority"), "label": t("label"), "status": t("status"), "verified_at": t("proven reachable")}

    def show(value: Any) -> str:
        if value is None:
            return "–"
        if isinstance(value, bool):
            return t("yes") if value else t("no")
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
            try:
                from datetime import datetime

                return t.when(datetime.fromisoformat(value))
            except ValueError:
                return value
        if isinstance(value, str) and value in ENDPOINT_STATUSES:
            return t.name("endpoint_status", value)
        return str(value)

    return {"groups": list(groups.items()), "change_name": lambda c: changes.get(c, c),
            "attr_name": lambda a: attrs.get(a, a), "show": show}


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
        from reports.test_report import ActionPoint, Attempt, CheckLine, DirectoryChange, LateAnswer, MatrixCell

        return {
            "matrix": _rows(report.matrix, list(MatrixCell.model_fields)),
            "checks": _rows(report.checks, list(CheckLine.model_fields)),
            "attempts": _rows(report.attempts, list(Attempt.model_fields)),
            "action_points": _rows(report.action_points + report.directory_state.action_points,
                                   list(ActionPoint.model_fields)),
            "answers_after_close": _rows(report.answers_after_close, list(LateAnswer.model_fields)),
            "outcomes": (["outcome", "checks"], [[k, v] for k, v in report.outcome_counts.items()]),
            "timeline": (["event_id", "at", "kind", "organisation", "channel", "contact_point", "outcome", "params"],
                         [[e.event_id, _cell(e.at), e.kind, e.organisation, e.channel, e.contact_point, e.outcome,
                           json.dumps(e.params, sort_keys=True)] for e in report.timeline]),
            "directory_changes": _rows(report.directory_changes, list(DirectoryChange.model_fields)),
        }
    if isinstance(report, MonthlyView):
        from reports.monthly_figures import Breach, MonthActionPoint, MonthRun, OrgChannelStats

        f = report.figures
        stats = ["checks", "answered", "in_target", "ack_rate", "in_target_rate", "median_ms", "p90_ms"]
        return {
            "runs": _rows(f.runs, list(MonthRun.model_fields)),
            "outcomes": (["outcome", "checks"], [[k, v] for k, v in f.outcome_counts.items()]),
            "per_org_channel": _rows(f.per_org_channel, list(OrgChannelStats.model_fields)),
            "breaches": _rows(f.breaches, list(Breach.model_fields)),
            "trend": _rows(f.trend, ["month", "runs", *stats]),
            "action_points": _rows(f.action_points + f.stale_endpoints, list(MonthActionPoint.model_fields)),
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
        "changes": (["what", "change", "key", "fields"],
                    [[c.what, c.change, c.key, json.dumps(c.fields, sort_keys=True)] for c in report.changes]),
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
