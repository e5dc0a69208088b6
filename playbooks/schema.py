"""The playbook schema: what a playbook YAML file may say, validated with pydantic.

These are non-table models (SQLModel tables do not validate). A stored
``PlaybookRevision`` keeps the YAML text; ``PlaybookSpec`` is what it means.

Semantics the run engine relies on:

* Every participant (organisation, field of work) resolves to the active contact
  points of that organisation and field in the directory.
* A step pings each contact point on ``channel``. Steps that are nobody's escalation
  target start at run start + ``start_after``. In ``mode: sequence`` each step escalates
  to the next one unless it says otherwise, so only the first step starts by itself.
* Attempt 1 goes to the endpoint with the best priority; attempt n+1 is sent
  ``retry_interval`` after attempt n's deadline passed unacknowledged (or after it failed
  temporarily); after a permanent failure the next endpoint of the same kind is tried.
* When the last attempt of a step is unacknowledged at its deadline, ``escalate`` fires:
  another step for the same contact point, and/or the same step for the contact point of
  another field of work of the same organisation.
* ``targets`` give, per channel, the response time that counts as a pass.
"""
from __future__ import annotations

import re
from datetime import time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from playbooks.durations import Duration

CHANNEL_KINDS = ("email", "voice", "sms", "video", "cap", "manual")
ChannelName = Literal["email", "voice", "sms", "video", "cap", "manual"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MessageTemplate(_Strict):
    """One message in one language. Jinja2, sandboxed, StrictUndefined; checked at load.

    ``subject`` is used by e-mail; ``body`` by every channel (the spoken text for voice,
    the SMS text, the e-mail text part); ``html`` optionally replaces the generated HTML part.
    """

    subject: str = ""
    body: str
    html: str | None = None


class ParticipantSpec(_Strict):
    organisation: str  # organisation code in the directory, e.g. BE-NCCN
    fields: list[str] = Field(min_length=1)  # field-of-work codes, e.g. [crisis-desk]


class EscalationSpec(_Strict):
    step: str | None = None  # another step for the same contact point
    field: str | None = None  # the same organisation's contact point in this field of work

    @model_validator(mode="after")
    def _something(self) -> EscalationSpec:
        if not self.step and not self.field:
            raise ValueError("escalate needs a step, a field, or both")
        return self


class StepSpec(_Strict):
    id: str
    channel: ChannelName
    template: str
    ack_deadline: Duration
    retries: int = Field(0, ge=0, le=10)
    retry_interval: Duration = timedelta(0)
    start_after: Duration = timedelta(0)
    escalate: EscalationSpec | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("expected lowercase letters, digits, '.', '_' or '-'")
        return value

    @field_validator("ack_deadline")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class WindowSpec(_Strict):
    """Hours inside which a test may fire, in the schedule's time zone."""

    days: list[str] = Field(default_factory=lambda: list(WEEKDAYS[:5]))
    start: time = time(9, 0)
    end: time = time(16, 0)

    @field_validator("days", mode="before")
    @classmethod
    def _days(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
            expanded: list[str] = []
            for item in value:  # "mon-fri"
                if "-" in item:
                    a, b = (x.strip().lower()[:3] for x in item.split("-", 1))
                    if a in WEEKDAYS and b in WEEKDAYS:
                        i, j = WEEKDAYS.index(a), WEEKDAYS.index(b)
                        expanded.extend(WEEKDAYS[i : j + 1])
                        continue
                expanded.append(item)
            value = expanded
        if isinstance(value, list):
            out = []
            for item in value:
                day = str(item).strip().lower()[:3]
                if day not in WEEKDAYS:
                    raise ValueError(f"unknown weekday {item!r}; expected mon..sun")
                out.append(day)
            return out
        return value

    @model_validator(mode="after")
    def _order(self) -> WindowSpec:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end:%H:%M} must be after its start {self.start:%H:%M}")
        if not self.days:
            raise ValueError("window needs at least one day")
        return self


class ScheduleSpec(_Strict):
    """When tests fire.

    * ``cron`` alone: exact moments (five fields: minute hour day month weekday).
    * ``months`` + ``window``: one test in each named month, at a moment drawn inside the
      window on an eligible day of that month (unannounced tests).
    * ``cron`` + ``window``: the cron expression picks the days; the moment is drawn inside
      the window on each of them.
    The draw is made once, when the run is planned, and stored.
    """

    key: str
    description: str = ""
    cron: str | None = None
    months: list[int] | None = None
    window: WindowSpec | None = None
    timezone: str | None = None  # defaults to the playbook's
    announced: bool = False
    announce_before: Duration | None = None

    @field_validator("months", mode="before")
    @classmethod
    def _months(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list):
            value = [value]
        out = []
        for item in value:
            if isinstance(item, int) and not isinstance(item, bool):
                if not 1 <= item <= 12:
                    raise ValueError(f"month {item} does not exist; expected 1..12 or a month name")
                out.append(item)
                continue
            name = str(item).strip().lower()[:3]
            if name not in MONTHS:
                raise ValueError(f"unknown month {item!r}; expected a month name such as april or 1..12")
            out.append(MONTHS.index(name) + 1)
        return out

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            _check_zone(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> ScheduleSpec:
        if self.cron and self.months:
            raise ValueError("give either cron or months, not both")
        if not self.cron and not self.months:
            raise ValueError("a schedule needs cron or months")
        if self.months and not self.window:
            raise ValueError("months needs a window to draw the moment in")
        if self.announce_before and not self.announced:
            raise ValueError("announce_before only applies to announced schedules")
        return self


class PlaybookSpec(_Strict):
    id: str
    title: str
    owner: str  # organisation code
    description: str = ""
    timezone: str = "Europe/Brussels"
    default_language: str = "en"
    mode: Literal["parallel", "sequence"] = "parallel"
    participants: list[ParticipantSpec] = Field(min_length=1)
    steps: list[StepSpec] = Field(min_length=1)
    targets: dict[ChannelName, Duration] = Field(default_factory=dict)
    templates: dict[str, dict[str, MessageTemplate]] = Field(min_length=1)
    schedules: list[ScheduleSpec] = Field(default_factory=list)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("expected lowercase letters, digits, '.', '_' or '-'")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        _check_zone(value)
        return value

    @model_validator(mode="after")
    def _references(self) -> PlaybookSpec:
        ids = [s.id for s in self.steps]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate step id(s): {', '.join(dupes)}")
        for step in self.steps:
            if step.template not in self.templates:
                raise ValueError(f"step {step.id!r} uses template {step.template!r}, which is not defined")
            if step.escalate and step.escalate.step and step.escalate.step not in ids:
                raise ValueError(f"step {step.id!r} escalates to unknown step {step.escalate.step!r}")
        for name, langs in self.templates.items():
            if self.default_language not in langs:
                raise ValueError(f"template {name!r} has no text in the default language {self.default_language!r}")
        keys = [s.key for s in self.schedules]
        if len(keys) != len(set(keys)):
            raise ValueError("schedule keys must be unique")
        return self

    # -- what the engine asks -------------------------------------------------
    def step(self, step_id: str) -> StepSpec:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def escalation_of(self, step: StepSpec) -> EscalationSpec | None:
        """The escalation that fires when ``step`` ends unacknowledged (sequence mode implied)."""
        if step.escalate:
            return step.escalate
        if self.mode == "sequence":
            i = self.steps.index(step)
            if i + 1 < len(self.steps):
                return EscalationSpec(step=self.steps[i + 1].id)
        return None

    def initial_steps(self) -> list[StepSpec]:
        """Steps that start at run start (those no other step escalates to)."""
        targets = {e.step for s in self.steps if (e := self.escalation_of(s)) and e.step}
        return [s for s in self.steps if s.id not in targets]

    def channels(self) -> list[str]:
        seen: list[str] = []
        for s in self.steps:
            if s.channel not in seen:
                seen.append(s.channel)
        return seen


def _check_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r} (e.g. Europe/Brussels)") from exc
