"""Read a directory file (YAML or CSV) into raw records that remember their lines.

Nothing is validated here beyond the file's shape: the records keep the values as
written, with the 1-based line of each key (YAML) or the physical line of each row
(CSV), so that ``validate`` can say FILE:LINE: field: what is wrong.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from commtest.errors import Problem, ValidationFailed
from commtest.limits import DEFAULT_MAX_DIRECTORY_BYTES, read_limited
from commtest.yaml_input import YamlRefused, bounded_yaml, refusal_problem, unreadable_problem

CSV_COLUMNS = (
    "organisation_code", "organisation_name", "country", "organisation_languages", "organisation_timezone",
    "field", "field_name", "contact_point_code", "contact_point_name", "contact_point_kind", "title",
    "languages", "active", "endpoint_kind", "address", "priority", "label", "status", "verified_at",
    # Beyond the required columns, so that a CSV export loses nothing a YAML file can say:
    "organisation_role", "organisation_notes", "field_names", "contact_point_timezone", "contact_point_notes",
    "organisation_names",
)  # fmt: skip
REQUIRED_CSV_COLUMNS = CSV_COLUMNS[:19]

# model field -> CSV column, per record kind (for error messages)
_ORG_COLUMNS = {"code": "organisation_code", "name": "organisation_name", "names": "organisation_names",
                "country": "country",
                "languages": "organisation_languages", "timezone": "organisation_timezone",
                "role": "organisation_role", "notes": "organisation_notes"}  # fmt: skip
_FIELD_COLUMNS = {"code": "field", "name": "field_name", "names": "field_names"}
_CP_COLUMNS = {"code": "contact_point_code", "organisation": "organisation_code", "field": "field",
               "name": "contact_point_name", "kind": "contact_point_kind", "title": "title",
               "languages": "languages", "timezone": "contact_point_timezone", "active": "active",
               "notes": "contact_point_notes"}  # fmt: skip
_EP_COLUMNS = {"kind": "endpoint_kind", "address": "address", "priority": "priority", "label": "label",
               "status": "status", "verified_at": "verified_at"}  # fmt: skip


@dataclass(frozen=True)
class Where:
    """Where a record was written: its line, and per key its line and its name in the file."""

    file: str
    line: int
    key_lines: Mapping[str, int] = field(default_factory=dict)
    key_names: Mapping[str, str] = field(default_factory=dict)

    def problem(self, key: str | None, message: str) -> Problem:
        line = self.key_lines.get(key, self.line) if key else self.line
        return Problem(self.file, line, self.key_names.get(key, key) if key else "", message)


@dataclass
class RawRecord:
    where: Where
    data: dict[str, Any]


@dataclass
class RawContactPoint(RawRecord):
    endpoints: list[RawRecord] = field(default_factory=list)


@dataclass
class RawDirectory:
    file: str
    organisations: list[RawRecord] = field(default_factory=list)
    fields: list[RawRecord] = field(default_factory=list)
    contact_points: list[RawContactPoint] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def read_directory_file(path: Path, *, max_bytes: int = DEFAULT_MAX_DIRECTORY_BYTES) -> RawDirectory:
    """Read ``path`` by its extension; a file that cannot be read at all raises ValidationFailed.

    A file over ``max_bytes`` (the setting ``max_directory_bytes``) is refused before it is parsed."""
    name = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".csv"):
        raise ValidationFailed(
            [Problem(name, None, "", f"unknown file type {suffix or '(none)'!r}; expected a .yaml, .yml or .csv file")]
        )
    try:
        data = read_limited(path, limit=max_bytes, what="a directory file", setting="max_directory_bytes")
    except FileNotFoundError as exc:
        raise ValidationFailed([Problem(name, None, "", "file not found")]) from exc
    except OSError as exc:
        raise ValidationFailed([Problem(name, None, "", f"cannot read the file: {exc.strerror or exc}")]) from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValidationFailed(
            [Problem(name, line, "", f"not UTF-8 text (byte {exc.start:,} cannot be decoded); "
                                     "save the file as UTF-8 (in a spreadsheet: CSV UTF-8)")]
        ) from exc
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValidationFailed(
            [Problem(name, line, "", "the file holds NUL characters: it is a binary file, not YAML or CSV text")]
        )
    return read_csv(text, name) if suffix == ".csv" else read_yaml(text, name)


# ---------------------------------------------------------------------------
# YAML


def read_yaml(text: str, name: str) -> RawDirectory:
    try:
        doc = bounded_yaml().load(text)
    except YamlRefused as exc:
        raise ValidationFailed([refusal_problem(exc, name)]) from exc
    except MarkedYAMLError as exc:
        line, col, what = _syntax_error(exc)
        raise ValidationFailed(
            [Problem(name, line, "", f"YAML syntax error: {what}; check indentation and quoting", col)]
        ) from exc
    except YAMLError as exc:  # e.g. a control character the YAML reader refuses
        raise ValidationFailed([unreadable_problem(exc, text, name)]) from exc
    raw = RawDirectory(name)
    if doc is None:
        return raw
    if not isinstance(doc, CommentedMap):
        raw.problems.append(Problem(name, 1, "", "expected a mapping with 'fields_of_work:' and 'organisations:'"))
        return raw
    for key in doc:
        if key not in ("organisations", "fields_of_work"):
            raw.problems.append(
                Problem(name, doc.lc.key(key)[0] + 1, str(key), "unknown key; expected organisations or fields_of_work")
            )
    for item in _mappings(raw, doc, "fields_of_work"):
        raw.fields.append(RawRecord(_where(name, item), dict(item)))
    for item in _mappings(raw, doc, "organisations"):
        org = dict(item)
        cps = _mappings(raw, item, "contact_points")
        org.pop("contact_points", None)
        raw.organisations.append(RawRecord(_where(name, item), org))
        for cp_map in cps:
            data = dict(cp_map)
            data.pop("endpoints", None)
            if "organisation" in cp_map:  # it would be silently overridden by the nesting below
                raw.problems.append(
                    Problem(name, cp_map.lc.key("organisation")[0] + 1, "organisation",
                            "unknown key; a contact point belongs to the organisation it is listed under")
                )  # fmt: skip
            data["organisation"] = org.get("code")
            cp = RawContactPoint(_where(name, cp_map), data)
            cp.endpoints = [RawRecord(_where(name, e), dict(e)) for e in _mappings(raw, cp_map, "endpoints")]
            raw.contact_points.append(cp)
    return raw


# Errors whose ``context_mark`` is the mistake itself (a bracket or quote left open, a key
# without ':'): the parser only notices at ``problem_mark``, often the next line.
_OPENED_AT_CONTEXT = {
    "while parsing a flow sequence": "flow sequence not closed",
    "while parsing a flow mapping": "flow mapping not closed",
    "while scanning a quoted scalar": "quoted text not closed",
    "while scanning a simple key": "key without ':'",
}


def _syntax_error(exc: MarkedYAMLError) -> tuple[int | None, int | None, str]:
    """(line, column, message) of a YAML syntax error, 1-based, pointing at the mistake."""
    problem, context = exc.problem_mark, exc.context_mark
    opened = _OPENED_AT_CONTEXT.get(str(exc.context))
    if opened and context is not None:
        where = f" (noticed on line {problem.line + 1}, column {problem.column + 1})" if problem is not None else ""
        return context.line + 1, context.column + 1, f"{opened}: {exc.problem}{where}"
    # Otherwise (bad indentation, duplicate key, stray character...) the problem mark is
    # the spot; the context mark is only where the enclosing block started.
    mark = problem or context
    what = exc.problem or exc.context or "cannot be read"
    return (mark.line + 1, mark.column + 1, str(what)) if mark is not None else (None, None, str(what))


def _mappings(raw: RawDirectory, parent: CommentedMap, key: str) -> list[CommentedMap]:
    """The mappings listed under ``parent[key]``; anything else is a problem."""
    value = parent.get(key)
    if value is None:
        return []
    line = parent.lc.value(key)[0] + 1
    if not isinstance(value, CommentedSeq):
        raw.problems.append(Problem(raw.file, line, key, "expected a list (items starting with '- ')"))
        return []
    out = []
    for i, item in enumerate(value):
        if isinstance(item, CommentedMap):
            out.append(item)
        else:
            raw.problems.append(
                Problem(raw.file, value.lc.item(i)[0] + 1, key, f"expected a mapping (key: value), got {item!r}")
            )
    return out


def _where(name: str, item: CommentedMap) -> Where:
    return Where(name, item.lc.line + 1, {str(k): item.lc.key(k)[0] + 1 for k in item})


# ---------------------------------------------------------------------------
# CSV


def read_csv(text: str, name: str) -> RawDirectory:
    raw = RawDirectory(name)
    rows = _rows(csv.reader(io.StringIO(text, newline="")), name, text)
    first = next(rows, None)
    if first is None:
        return raw
    header = [h.strip() for h in first[1]]
    missing = [c for c in REQUIRED_CSV_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing:
        raw.problems.append(Problem(name, 1, "", f"missing column(s) {', '.join(missing)}"))
    if unknown:
        raw.problems.append(
            Problem(name, 1, "", f"unknown column(s) {', '.join(unknown)}; expected {', '.join(CSV_COLUMNS)}")
        )
    if missing or unknown:
        return raw
    orgs: dict[str, RawRecord] = {}
    fields: dict[str, RawRecord] = {}
    cps: dict[str, RawContactPoint] = {}
    for start, values in rows:
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raw.problems.append(Problem(name, start, "", f"{len(values)} values for {len(header)} columns"))
            continue
        row = dict(zip(header, (v.strip() for v in values)))
        _csv_row(raw, start, row, orgs, fields, cps)
    return raw


def _rows(reader: Any, name: str, text: str) -> Iterator[tuple[int, list[str]]]:
    """(first physical line, values) of each row: a quoted value may span several lines.

    Python's csv module refuses a value longer than ``csv.field_size_limit()`` (131,072
    characters), most often a quote left open that swallows the rest of the file: that
    becomes a located problem at the line where the row began, naming the column."""
    end = 0
    header: list[str] = []
    while True:
        start = end + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            column, detail = "", str(exc)
            if "field larger than field limit" in detail:
                index = _long_value_index(text, start, csv.field_size_limit())
                column = header[index].strip() if index is not None and index < len(header) else ""
                upto = f" (read up to line {reader.line_num})" if reader.line_num > start else ""
                detail = (f"a value longer than {csv.field_size_limit():,} characters{upto}; "
                          "close a quote left open, or shorten the value")
            raise ValidationFailed([Problem(name, start, column, f"CSV cannot be read: {detail}")]) from exc
        end = reader.line_num
        if not header:
            header = values
        yield start, values


def _long_value_index(text: str, line: int, limit: int) -> int | None:
    """The 0-based column of the first value longer than ``limit`` in the row that starts on ``line``."""
    pos = 0
    for _ in range(line - 1):
        pos = text.find("\n", pos) + 1
        if pos == 0:
            return None
    index, length, quoted = 0, 0, False
    while pos < len(text):
        char = text[pos]
        if quoted:
            if char == '"':
                if text.startswith('"', pos + 1):
                    pos += 1  # "" inside quotes is one quote
                else:
                    quoted = False
                    pos += 1
                    continue
        elif char == '"':
            quoted = True
            pos += 1
            continue
        elif char == ",":
            index, length = index + 1, 0
            pos += 1
            continue
        elif char in "\r\n":
            return None
        length += 1
        if length > limit:
            return index
        pos += 1
    return None


def _csv_row(
    raw: RawDirectory,
    line: int,
    row: dict[str, str],
    orgs: dict[str, RawRecord],
    fields: dict[str, RawRecord],
    cps: dict[str, RawContactPoint],
) -> None:
    org_code, field_code = row["organisation_code"], row["field"]
    if row["organisation_name"]:
        org = _fragment(raw.file, line, row, _ORG_COLUMNS)
        if "names" in org.data:
            org.data["names"] = _names(org.data["names"])
        _define(raw, orgs, org_code, org, raw.organisations, "organisation")
    if row["field_name"]:
        fow = _fragment(raw.file, line, row, _FIELD_COLUMNS)
        if "names" in fow.data:
            fow.data["names"] = _names(fow.data["names"])
        _define(raw, fields, field_code, fow, raw.fields, "field of work")
    has_cp = bool(row["contact_point_name"] or row["contact_point_code"])
    has_ep = bool(row["endpoint_kind"] or row["address"])
    if not has_cp:
        if has_ep:
            raw.problems.append(Problem(raw.file, line, "contact_point_name", "an endpoint needs a contact point on its row"))
        elif not (row["organisation_name"] or row["field_name"]):
            raw.problems.append(Problem(raw.file, line, "", "row defines nothing; give a contact point, an organisation or a field"))
        return
    frag = _fragment(raw.file, line, row, _CP_COLUMNS)
    cp = RawContactPoint(frag.where, frag.data)
    key = row["contact_point_code"] or f"{org_code}/{field_code}"
    known = cps.get(key)
    if known is None:
        cps[key] = cp
        raw.contact_points.append(cp)
    else:
        _compare(raw, known, cp, "contact point", key)
        cp = known
    if has_ep:
        cp.endpoints.append(_fragment(raw.file, line, row, _EP_COLUMNS))


def _fragment(file: str, line: int, row: dict[str, str], columns: dict[str, str]) -> RawRecord:
    # An empty cell means "not given": the model's default (or, on merge, the database's value) applies.
    data = {key: row[col] for key, col in columns.items() if row.get(col, "") != ""}
    return RawRecord(Where(file, line, {}, columns), data)


def _define(
    raw: RawDirectory, seen: dict[str, RawRecord], code: str, record: RawRecord, out: list[RawRecord], what: str
) -> None:
    known = seen.get(code)
    if known is None:
        seen[code] = record
        out.append(record)
    else:
        _compare(raw, known, record, what, code)


def _compare(raw: RawDirectory, first: RawRecord, again: RawRecord, what: str, code: str) -> None:
    """Rows repeat the organisation, field and contact point: they must agree."""
    for key in sorted(again.data):
        if key not in first.data:
            first.data[key] = again.data[key]  # an earlier row left the cell empty
        elif first.data[key] != again.data[key]:
            raw.problems.append(
                again.where.problem(
                    key,
                    f"{again.data[key]!r} differs from {first.data[key]!r} given for {what} {code} on line "
                    f"{first.where.line}; repeat the same value on every row (or give it another code)",
                )
            )


def _names(text: str) -> Any:
    """``nl=Crisisdesk; fr=Permanence`` -> mapping; anything else is left for the model to refuse."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        if "=" not in part:
            return text
        lang, value = part.split("=", 1)
        out[lang.strip()] = value.strip()
    return out
