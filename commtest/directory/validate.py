"""Turn raw records into a validated ``DirectoryData``, collecting every problem first.

All or nothing: ``validate`` either returns the whole directory, normalised, or raises
``ValidationFailed`` listing every problem found (never only the first one).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import phonenumbers
from pydantic import BaseModel, ValidationError

from commtest.errors import Problem, ValidationFailed

from .load import RawDirectory, RawRecord
from .schema import ContactPointIn, EndpointIn, FieldOfWorkIn, OrganisationIn, country_code, endpoint_key

M = TypeVar("M", bound=BaseModel)
# Keys the YAML reader takes out before validation (the nesting), still valid in the file.
_NESTED = {"OrganisationIn": ["contact_points"], "ContactPointIn": ["endpoints"]}


@dataclass(frozen=True)
class DirectoryData:
    """A whole directory file, validated. Endpoints are paired with their contact point's code."""

    fields: tuple[FieldOfWorkIn, ...]
    organisations: tuple[OrganisationIn, ...]
    contact_points: tuple[ContactPointIn, ...]
    endpoints: tuple[tuple[str, EndpointIn], ...]


def validate(
    raw: RawDirectory,
    *,
    known_organisations: Mapping[str, str] | None = None,
    known_fields: frozenset[str] = frozenset(),
) -> DirectoryData:
    """Validate ``raw``. ``known_*`` (merge mode) lets a file refer to what the database has:
    organisations by code -> country, fields by code."""
    problems = list(raw.problems)
    known_orgs = dict(known_organisations or {})

    fields = _unique(problems, [(r, _model(problems, r, FieldOfWorkIn)) for r in raw.fields], "field of work")
    orgs = _unique(problems, [(r, _model(problems, r, OrganisationIn)) for r in raw.organisations], "organisation")
    region = {
        **{c: country[:2] for c, country in known_orgs.items()},
        **_raw_regions(raw.organisations),  # an organisation with other errors still says its country
        **{o.code: o.region for o in orgs},
    }
    field_codes = known_fields | {f.code for f in fields}
    # An organisation that failed validation is still "defined": do not pile up unknown-organisation errors.
    defined_orgs = set(region) | {str(r.data.get("code")) for r in raw.organisations}
    defined_fields = field_codes | {str(r.data.get("code")) for r in raw.fields}

    cps: list[tuple[RawRecord, ContactPointIn | None]] = []
    endpoints: list[tuple[str, EndpointIn]] = []
    seen_endpoints: dict[tuple[str, str, str], tuple[int, str]] = {}  # -> (line, address as given)
    for cp_raw in raw.contact_points:
        data = dict(cp_raw.data)
        org, fow = data.get("organisation"), data.get("field")
        if not data.get("code") and org and fow:
            data["code"] = f"{org}/{fow}"
        ok = True
        if org is not None and str(org) not in defined_orgs:
            ok = False
            problems.append(
                cp_raw.where.problem(
                    "organisation",
                    f"unknown organisation {org!r}; define it (with its name, country, languages and time zone) "
                    "on this or another row",
                )
            )
        if fow is not None and str(fow) not in defined_fields:
            ok = False
            known = ", ".join(sorted(field_codes)) or "none defined"
            problems.append(
                cp_raw.where.problem("field", f"unknown field of work {fow!r}; expected one of: {known}")
            )
        record = RawRecord(cp_raw.where, data)
        cp = _model(problems, record, ContactPointIn)
        cps.append((record, cp if ok else None))
        # The endpoints are checked even when their contact point is wrong: every problem at once.
        cp_code = _code(record)
        for ep_raw in cp_raw.endpoints:
            ep = _model(problems, ep_raw, EndpointIn, context={"region": region.get(str(org))})
            if ep is None:
                continue
            if ep.kind == "sms" and (refusal := _sms_refusal(ep.address)):
                problems.append(ep_raw.where.problem("address", refusal))
                continue
            key = (cp_code or "", ep.kind, endpoint_key(ep.kind, ep.address))
            if cp_code is not None and key in seen_endpoints:
                first_line, first_address = seen_endpoints[key]
                case = "; e-mail addresses are compared without regard to case" if first_address != ep.address else ""
                problems.append(
                    ep_raw.where.problem(
                        "address",
                        f"duplicate endpoint {ep.kind} {ep.address} for contact point {cp_code} "
                        f"(first given on line {first_line}{case}); remove one",
                    )
                )
                continue
            seen_endpoints[key] = (ep_raw.where.line, ep.address)
            endpoints.append((cp_code or "", ep))
    contact_points = _unique(problems, cps, "contact point", hint="; give each contact point its own code")
    if problems:
        # In file order, so that the operator fixes them top to bottom.
        raise ValidationFailed(sorted(problems, key=lambda p: p.line or 0))
    return DirectoryData(tuple(fields), tuple(orgs), tuple(contact_points), tuple(endpoints))


def _sms_refusal(address: str) -> str | None:
    """Why an SMS endpoint's number cannot receive SMS (a fixed line), or None."""
    try:
        kind = phonenumbers.number_type(phonenumbers.parse(address, None))
    except phonenumbers.NumberParseException:
        return None  # the address check has said so already
    if kind == phonenumbers.PhoneNumberType.FIXED_LINE:
        return (f"{address} is a fixed line (landline), which cannot receive SMS; give a mobile number for this "
                "sms endpoint, or make it a voice endpoint")
    return None


def _model(
    problems: list[Problem], record: RawRecord, model: type[M], *, context: dict[str, Any] | None = None
) -> M | None:
    try:
        return model.model_validate(record.data, context=context)
    except ValidationError as exc:
        for err in exc.errors():
            key = str(err["loc"][0]) if err["loc"] else None
            problems.append(record.where.problem(key, _message(err, model)))
        return None


def _message(err: Any, model: type[BaseModel]) -> str:
    kind, msg = err["type"], str(err["msg"])
    if kind == "value_error":
        return msg.removeprefix("Value error, ")
    if kind == "missing":
        return "missing; this value is required"
    if kind == "extra_forbidden":
        keys = [f for f in model.model_fields if f != "organisation"] + _NESTED.get(model.__name__, [])
        return f"unknown key; expected one of: {', '.join(keys)}"
    return f"{msg} (got {err.get('input')!r})"


def _code(record: RawRecord) -> str | None:
    """The code as written (stripped, as the models strip it), or None when there is none."""
    code = record.data.get("code")
    text = "" if code is None else str(code).strip()
    return text or None


def _raw_regions(records: list[RawRecord]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in records:
        code = _code(r)
        try:
            country = country_code(str(r.data.get("country", "")))
        except ValueError:
            continue
        if code is not None:
            out.setdefault(code, country[:2])
    return out


def _unique(problems: list[Problem], items: list[tuple[RawRecord, M | None]], what: str, hint: str = "") -> list[M]:
    """The valid items with a code not seen before; a duplicate is reported by the code as written,
    whether or not either record has other errors."""
    out: list[M] = []
    first_line: dict[str, int] = {}
    for record, item in items:
        code = _code(record)
        if code is not None and code in first_line:
            problems.append(
                record.where.problem(
                    "code", f"duplicate {what} code {code!r} (first defined on line {first_line[code]}){hint}"
                )
            )
            continue
        if code is not None:
            first_line[code] = record.where.line
        if item is not None:
            out.append(item)
    return out
