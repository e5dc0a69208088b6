"""The playbook schema: what a playbook YAML file may say, validated with pydantic.

These are non-table models (SQLModel tables do not validate). A stored
``PlaybookRevision`` keeps the YAML text; ``PlaybookSpec`` is what it means.

Semantics the run engine relies on:

* Every participant (organisation, field of work) resolves to the active contact
  points of that organisation and field in the directory.
* A step pings each contact point on ``channel`` (only those of the organisations it names
  in ``organisations``, when it names some: a system link only one centre has). Steps that are nobody's escalation
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
from collections.abc import Mapping
from datetime import time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import langcodes
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from commtest.facts import FactRules
from playbooks.durations import Duration

CHANNEL_KINDS = ("email", "voice", "sms", "video", "cap", "manual")
ChannelName = Literal["email", "voice", "sms", "video", "cap", "manual"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


Loc = tuple[str | int, ...]


class SpecError(ValueError):
    """Several problems at once, each at a location relative to the value being validated.

    Validators raise this instead of a bare ValueError so that the loader can report every
    problem at its own YAML position; ``str()`` still lists them all for other callers.
    """

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(message for _, message in self.problems))


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


AnswerRule = Literal["any", "all"]


class ParticipantSpec(_Strict):
    organisation: str  # organisation code in the directory, e.g. BE-NCCN
    fields: list[str] = Field(min_length=1)  # field-of-work codes, e.g. [crisis-desk]
    # Overrides the playbook's ``answer`` for this organisation.
    answer: AnswerRule | None = None


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
    # Only these participants' contact points get this step (default: every participant's).
    organisations: list[str] | None = Field(None, min_length=1)

    def pings(self, organisation: str) -> bool:
        """Whether this step pings ``organisation``'s contact points."""
        return self.organisations is None or organisation in self.organisations

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
            bad: list[tuple[Loc, str]] = []
            for i, item in enumerate(value):
                day = str(item).strip().lower()[:3]
                if day not in WEEKDAYS:
                    bad.append(((i,), f"unknown weekday {item!r}; expected mon..sun"))
                out.append(day)
            if bad:
                raise SpecError(bad)
            return out
        return value

    @model_validator(mode="after")
    def _order(self) -> WindowSpec:
        problems: list[tuple[Loc, str]] = []
        if self.end <= self.start:
            problems.append(
                (("end",), f"window end {self.end:%H:%M} must be after its start {self.start:%H:%M}")
            )
        if not self.days:
            problems.append((("days",), "window needs at least one day"))
        if problems:
            raise SpecError(problems)
        return self


class ScheduleSpec(_Strict):
    """When tests fire.

    * ``cron`` alone: exact moments (five fields: minute hour day month weekday).
    * ``months`` + ``window``: one test in each named month, at a moment drawn inside the
      window on an eligible day of that month (unannounced tests).
    * ``cron`` + ``window``: a test day is a cron day AND a window day (``window.days``);
      the moment is drawn inside the window on each of them.
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
    # The message sent ``announce_before`` the test to every participant's e-mail endpoints.
    announce_template: str = "announcement"

    @field_validator("months", mode="before")
    @classmethod
    def _months(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, list):
            value = [value]
        out = []
        bad: list[tuple[Loc, str]] = []
        for i, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool):
                if not 1 <= item <= 12:
                    bad.append(((i,), f"month {item} does not exist; expected 1..12 or a month name"))
                out.append(item)
                continue
            name = str(item).strip().lower()[:3]
            if name not in MONTHS:
                bad.append(((i,), f"unknown month {item!r}; expected a month name such as april or 1..12"))
                continue
            out.append(MONTHS.index(name) + 1)
        if bad:
            raise SpecError(bad)
        return out

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            _check_zone(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> ScheduleSpec:
        problems: list[tuple[Loc, str]] = []
        if self.cron and self.months:
            problems.append((("months",), "give either cron or months, not both"))
        if not self.cron and not self.months:
            problems.append(((), "a schedule needs cron or months"))
        if self.months and not self.window:
            problems.append((("months",), "months needs a window to draw the moment in"))
        if self.announce_before and not self.announced:
            problems.append((("announce_before",), "announce_before only applies to announced schedules"))
        if problems:
            raise SpecError(problems)
        return self


class PlaybookSpec(_Strict):
    id: str
    title: str
    # The title in other languages, for reports read in them: {nl: ..., fr: ...}.
    titles: dict[str, str] = Field(default_factory=dict)
    owner: str  # organisation code
    description: str = ""
    # An organisation passes a channel when ``any`` of its contact points answered in target
    # (a centre's 24/7 desk: the default), or only when ``all`` of them did.
    answer: AnswerRule = "any"
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

    @field_validator("templates")
    @classmethod
    def _languages(cls, value: dict[str, dict[str, MessageTemplate]]) -> dict[str, dict[str, MessageTemplate]]:
        # The same check as the directory's contact languages, so a template language can
        # match a contact point's; reported at the language key itself.
        bad: list[tuple[Loc, str]] = [
            ((name, language, "[key]"), f"{language!r} is not a language tag; "
             "write a BCP 47 tag such as en, nl, fr, de, lb or nl-BE")
            for name, languages in value.items()
            for language in languages
            if not langcodes.tag_is_valid(language)
        ]
        if bad:
            raise SpecError(bad)
        return value

    @model_validator(mode="after")
    def _references(self) -> PlaybookSpec:
        problems = reference_problems(
            {
                "default_language": self.default_language,
                "mode": self.mode,
                "participants": [{"organisation": p.organisation} for p in self.participants],
                "steps": [
                    {
                        "id": st.id,
                        "template": st.template,
                        "escalate": st.escalate.model_dump() if st.escalate else None,
                        "organisations": st.organisations,
                    }
                    for st in self.steps
                ],
                "templates": {name: list(langs) for name, langs in self.templates.items()},
                "schedules": [
                    {"key": sc.key, "announced": sc.announced, "announce_before": sc.announce_before,
                     "announce_template": sc.announce_template}
                    for sc in self.schedules
                ],
            }
        )
        if problems:
            raise SpecError(problems)
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

    def title_in(self, language: str) -> str:
        base = language.split("-")[0]
        return self.titles.get(language) or self.titles.get(base) or self.title

    def fact_rules(self) -> FactRules:
        """What the figures of a run of this playbook depend on (commtest.facts)."""
        return FactRules(
            targets_ms={ch: int(d.total_seconds() * 1000) for ch, d in self.targets.items()},
            answer={p.organisation: p.answer for p in self.participants if p.answer},
            default_answer=self.answer,
            participants=tuple(p.organisation for p in self.participants),
            needed=tuple(dict.fromkeys((p.organisation, s.channel) for p in self.participants
                                       for s in self.initial_steps() if s.pings(p.organisation))),
        )


def reference_problems(data: Mapping[str, Any]) -> list[tuple[Loc, str]]:
    """Cross-references inside a playbook, on plain data so it also runs on a half-valid file.

    Every problem is collected (not just the first) so the loader can show them all.
    Malformed parts are skipped: the field validators report those.
    """
    problems: list[tuple[Loc, str]] = []
    raw_steps = data.get("steps")
    indexed = [(i, s) for i, s in enumerate(raw_steps) if isinstance(s, Mapping)] if isinstance(raw_steps, list) else []
    templates = data.get("templates")
    template_names = list(templates) if isinstance(templates, Mapping) else None
    ids = [s.get("id") for _, s in indexed]
    first_index: dict[Any, int] = {}
    for i, step in indexed:
        sid = step.get("id")
        if isinstance(sid, str):
            if sid in first_index:
                problems.append(
                    (("steps", i, "id"), f"duplicate step id {sid!r}; steps[{first_index[sid]}] already uses it")
                )
            else:
                first_index[sid] = i
        template = step.get("template")
        if isinstance(template, str) and template_names is not None and template not in template_names:
            known = ", ".join(sorted(str(n) for n in template_names)) or "none"
            problems.append(
                (
                    ("steps", i, "template"),
                    f"step {sid!r} uses template {template!r}, which is not defined (defined: {known})",
                )
            )
        escalate = step.get("escalate")
        target = escalate.get("step") if isinstance(escalate, Mapping) else None
        if isinstance(target, str) and target:
            if target not in ids:
                known_ids = ", ".join(dict.fromkeys(str(x) for x in ids if isinstance(x, str)))
                problems.append(
                    (
                        ("steps", i, "escalate", "step"),
                        f"step {sid!r} escalates to unknown step {target!r}; expected one of {known_ids}",
                    )
                )
            elif target == sid and isinstance(escalate, Mapping) and not escalate.get("field"):
                # Without a field this would ping the same contact point again, forever.
                problems.append(
                    (("steps", i, "escalate", "step"), f"step {sid!r} escalates to itself; use retries, or add a field")
                )
    problems.extend(_organisation_problems(data, indexed))
    default = data.get("default_language", PlaybookSpec.model_fields["default_language"].default)
    if isinstance(templates, Mapping) and isinstance(default, str):
        for name, langs in templates.items():
            if isinstance(langs, Mapping | list) and default not in langs:
                problems.append(
                    (
                        ("templates", name),
                        f"template {name!r} has no text in the default language {default!r}; "
                        f"add an entry for {default!r}",
                    )
                )
    raw_schedules = data.get("schedules")
    seen_keys: set[str] = set()
    for i, sched in enumerate(raw_schedules if isinstance(raw_schedules, list) else []):
        key = sched.get("key") if isinstance(sched, Mapping) else None
        if isinstance(sched, Mapping) and sched.get("announced") and sched.get("announce_before"):
            wanted = sched.get("announce_template", "announcement")
            if template_names is not None and wanted not in template_names:
                problems.append(
                    (
                        ("schedules", i, "announce_before"),
                        f"schedule {key!r} announces the test with template {wanted!r}, which is not defined; "
                        f"add a template {wanted!r} (subject and body) or set announce_template",
                    )
                )
        if isinstance(key, str):
            if key in seen_keys:
                problems.append(
                    (("schedules", i, "key"), f"duplicate schedule key {key!r}; schedule keys must be unique")
                )
            seen_keys.add(key)
    return problems


def _organisation_problems(data: Mapping[str, Any], indexed: list[tuple[int, Mapping[str, Any]]]) -> list[
        tuple[Loc, str]]:
    """A step's ``organisations`` must be participants, and such a step must start by itself:
    an escalation pings the contact point that did not answer, whatever its organisation."""
    problems: list[tuple[Loc, str]] = []
    raw = data.get("participants")
    participants = [str(p.get("organisation")) for p in raw if isinstance(p, Mapping) and p.get("organisation")] \
        if isinstance(raw, list) else None
    escalated_by: dict[str, str] = {}
    for n, (_i, step) in enumerate(indexed):
        escalate = step.get("escalate")
        target = escalate.get("step") if isinstance(escalate, Mapping) else None
        if not target and data.get("mode") == "sequence" and not isinstance(escalate, Mapping) and n + 1 < len(indexed):
            target = indexed[n + 1][1].get("id")
        if isinstance(target, str) and target != step.get("id"):
            escalated_by.setdefault(target, str(step.get("id")))
    for i, step in indexed:
        named = step.get("organisations")
        if not isinstance(named, list) or not named:
            continue
        sid = step.get("id")
        if participants is not None:
            for j, org in enumerate(named):
                if isinstance(org, str) and org not in participants:
                    problems.append((("steps", i, "organisations", j), f"step {sid!r} names {org}, which is not a "
                                     f"participant of this playbook (participants: {', '.join(participants)})"))
        if isinstance(sid, str) and sid in escalated_by:
            problems.append((("steps", i, "organisations"), f"step {sid!r} pings only some organisations, but step "
                             f"{escalated_by[sid]!r} escalates to it, for whichever organisation did not answer; start "
                             "it by itself (no step escalating to it), or leave organisations out"))
    return problems


def _check_zone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "Europe" is a folder of zones
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise ValueError(f"unknown IANA time zone {shown!r} (e.g. Europe/Brussels)") from exc
