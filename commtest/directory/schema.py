"""What a directory file may say: pydantic (non-table) models and their validators.

Table models do not validate (ARCHITECTURE.md, "Pitfalls"), so every value goes
through these models before it reaches ``commtest.models``. The models are frozen and
hold values already normalised: BCP 47 tags standardised, phone numbers in E.164,
e-mail addresses as ``email_validator`` normalises them, instants in aware UTC.
"""
from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import email_validator
import langcodes
import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    TypeAdapter,
    ValidationInfo,
    field_validator,
)

from commtest.clock import ensure_utc
from commtest.models import ChannelKind, EndpointStatus

ORG_CODE = re.compile(r"^[A-Z0-9]+(?:-[A-Z0-9]+)*$")
FIELD_CODE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
CONTACT_POINT_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9/._-]*$")
SIP_URI = re.compile(r"^sips?:[^@\s]+@[A-Za-z0-9.-]+(?::\d+)?(?:;[^\s]*)?$", re.IGNORECASE)
COUNTRY = re.compile(r"^([A-Z]{2})(?:-([A-Z0-9]{1,3}))?$")
CHANNEL_NAMES = tuple(k.value for k in ChannelKind)
STATUS_NAMES = tuple(s.value for s in EndpointStatus)
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


# ---------------------------------------------------------------------------
# single values (also used by the CSV reader and by tests)


def language_tag(value: str) -> str:
    """A BCP 47 tag, standardised (``EN-gb`` -> ``en-GB``); ``lb`` is Luxembourgish."""
    text = str(value).strip().replace("_", "-")
    if not text or not langcodes.tag_is_valid(text):
        raise ValueError(f"unknown language {value!r}; expected a BCP 47 tag such as nl, fr, de, lb or en-GB")
    return langcodes.standardize_tag(text)


def time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Europe" is a folder of zones
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(f"unknown time zone {shown!r}; expected an IANA name such as Europe/Brussels") from exc
    return value


def country_code(value: str) -> str:
    """ISO 3166-1 alpha-2 (``BE``) or a subdivision (``DE-NW``)."""
    match = COUNTRY.match(str(value).strip())
    # phonenumbers knows every assigned alpha-2 region, and we need it as the dialling hint.
    if not match or match.group(1) not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown country {value!r}; expected an ISO 3166 code such as BE, NL, LU or DE-NW")
    return match.group(0)


def phone_number(value: str, region: str | None) -> str:
    """E.164 (``+3225550110``); ``region`` (``BE``) lets a national number be written."""
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"cannot read {value!r} as a phone number ({exc._msg}); write it as +32 2 555 01 10") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(
            f"{value!r} is not a valid phone number{' for ' + region if region else ''}; "
            "check the digits and the country prefix (e.g. +32 2 555 01 10)"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def email_address(value: str) -> str:
    # check_deliverability=False: no DNS look-ups during an import. The ``.example``
    # special-use TLD of the fictional data is accepted by email-validator >= 2.1
    # (it is not in SPECIAL_USE_DOMAIN_NAMES); a test pins that down.
    try:
        return email_validator.validate_email(value, check_deliverability=False).normalized
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid e-mail address: {exc}") from exc


def endpoint_address(kind: str, value: str, region: str | None) -> str:
    """Validate and normalise an address for its channel kind."""
    text = value.strip()
    if not text:
        raise ValueError(f"empty address; a {kind} endpoint needs one")
    if kind in ("voice", "sms"):
        return phone_number(text, region)
    if kind == "email":
        return email_address(text)
    if kind == "video":
        if SIP_URI.match(text):
            return text
        _http_url(text, ("http", "https"), "an http(s) URL or a SIP URI (sip:room@host)")
        return text
    if kind == "cap":
        _http_url(text, ("https",), "an https URL")
        return text
    return text  # manual: free text such as "radio: channel 5"


def endpoint_key(kind: str, address: str) -> str:
    """What makes two addresses of one kind the same endpoint: e-mail ignores case
    (``Permanence@NCCN.example`` is ``permanence@nccn.example``), other kinds compare as stored."""
    return address.lower() if kind == "email" else address


def _http_url(text: str, schemes: tuple[str, ...], expected: str) -> None:
    try:
        url = _HTTP_URL.validate_python(text)
    except ValueError as exc:
        raise ValueError(f"{text!r} is not {expected}") from exc
    if url.scheme not in schemes:
        raise ValueError(f"{text!r} is not {expected}")


def instant(value: Any) -> datetime:
    """ISO 8601 with a zone (``2026-03-14T09:30:00Z``); without one it is taken as UTC."""
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, date):
        raise ValueError(f"{value.isoformat()} is a date without a time; expected e.g. {value.isoformat()}T09:30:00Z")
    try:
        return ensure_utc(datetime.fromisoformat(str(value).strip()))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not an ISO 8601 instant; expected e.g. 2026-03-14T09:30:00Z") from exc


def _languages(value: Any) -> Any:
    if isinstance(value, str):  # "nl; fr" in CSV, or a single tag in YAML
        value = [v for v in re.split(r"[;,\s]+", value) if v]
    if not isinstance(value, list):
        raise ValueError("expected a list of language tags such as [nl, fr]")
    out: list[str] = []
    for item in value:
        tag = language_tag(str(item))
        if tag not in out:
            out.append(tag)
    return out


# ---------------------------------------------------------------------------
# models


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class FieldOfWorkIn(_Input):
    code: str
    name: str = Field(min_length=1, max_length=200)
    names: dict[str, str] = Field(default_factory=dict)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not FIELD_CODE.match(value):
            raise ValueError(f"{value!r} is not a field code; expected lowercase words joined by '-', e.g. crisis-desk")
        return value

    @field_validator("names", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("expected a mapping of language to name, e.g. {nl: Crisisdesk, fr: Permanence}")
        return {language_tag(str(k)): str(v).strip() for k, v in value.items()}


class OrganisationIn(_Input):
    code: str
    name: str = Field(min_length=1, max_length=200)
    # The name in other languages, for reports read in them: {fr: Centre national de crise}.
    names: dict[str, str] = Field(default_factory=dict)
    country: str
    languages: list[str] = Field(min_length=1)
    timezone: str
    role: Literal["participant", "coordinator"] = "participant"
    notes: str = Field("", max_length=2000)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not ORG_CODE.match(value) or len(value) > 32:
            raise ValueError(f"{value!r} is not an organisation code; expected uppercase letters, digits and '-', e.g. BE-NCCN")
        return value

    @field_validator("country")
    @classmethod
    def _country(cls, value: str) -> str:
        return country_code(value)

    @field_validator("names", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return FieldOfWorkIn._names(value)

    @field_validator("languages", mode="before")
    @classmethod
    def _langs(cls, value: Any) -> Any:
        return _languages(value)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return time_zone(value)

    @property
    def region(self) -> str:
        return self.country[:2]


class ContactPointIn(_Input):
    code: str
    organisation: str
    field: str
    name: str = Field(min_length=1, max_length=200)
    kind: Literal["person", "desk"] = "desk"
    title: str = Field("", max_length=200)
    languages: list[str] = Field(default_factory=list)
    timezone: str | None = None
    active: bool = True
    notes: str = Field("", max_length=2000)

    @field_validator("code")
    @classmethod
    def _code(cls, value: str) -> str:
        if not CONTACT_POINT_CODE.match(value) or len(value) > 100:
            raise ValueError(f"{value!r} is not a contact point code; expected letters, digits, '/', '.', '_', '-'")
        return value

    @field_validator("languages", mode="before")
    @classmethod
    def _langs(cls, value: Any) -> Any:
        return [] if value in (None, "") else _languages(value)

    @field_validator("timezone", mode="before")
    @classmethod
    def _zone(cls, value: Any) -> Any:
        return None if value in (None, "") else time_zone(str(value))


class EndpointIn(_Input):
    """``status`` and ``verified_at`` are None when the file does not say: merge keeps the database's."""

    kind: str
    address: str
    priority: int = Field(1, ge=1, le=99)
    label: str = Field("", max_length=100)
    status: Literal["active", "suspect", "invalid", "blocked"] | None = None
    verified_at: datetime | None = None

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in CHANNEL_NAMES:
            raise ValueError(f"unknown endpoint kind {value!r}; expected one of: {', '.join(CHANNEL_NAMES)}")
        return value

    @field_validator("address", mode="before")
    @classmethod
    def _address(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML reads an unquoted +3225550110 as the integer 3225550110: the '+' is lost.
            raise ValueError("read as a number, not text; put the phone number in quotes, e.g. '+32 2 555 01 10'")
        kind = info.data.get("kind")
        if kind is None or not isinstance(value, str):
            return value  # the kind's own error is enough
        region = (info.context or {}).get("region")
        return endpoint_address(kind, value, region)

    @field_validator("priority", mode="before")
    @classmethod
    def _priority(cls, value: Any) -> Any:
        if isinstance(value, bool) or (isinstance(value, str) and not value.strip().isdigit()):
            raise ValueError(f"{value!r} is not a priority; expected a whole number from 1 (tried first) to 99")
        return value

    @field_validator("verified_at", mode="before")
    @classmethod
    def _verified(cls, value: Any) -> Any:
        return None if value in (None, "") else instant(value)


__all__ = [
    "CHANNEL_NAMES",
    "ContactPointIn",
    "EndpointIn",
    "FieldOfWorkIn",
    "OrganisationIn",
    "country_code",
    "email_address",
    "endpoint_address",
    "endpoint_key",
    "instant",
    "language_tag",
    "phone_number",
    "time_zone",
]
