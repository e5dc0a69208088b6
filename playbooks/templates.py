"""Message templates: Jinja2, sandboxed, ``StrictUndefined`` (CONVENTIONS.md rule 7).

Playbook files are written by coordinators, so templates run in a sandbox; a variable
that does not exist is an error, never an empty string. Subject and body are plain text
(no escaping: an SMS must not say ``&amp;``); ``html`` is autoescaped.

The variables a template may use are exactly the fields of ``MessageContext``. Every
template is rendered once with ``sample_context`` when a playbook loads, so a typo fails
validation, not a 03:00 test.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time
from jinja2.sandbox import SandboxedEnvironment

from commtest.errors import CommtestError

if TYPE_CHECKING:
    from playbooks.schema import MessageTemplate, PlaybookSpec

__all__ = [
    "ContactRef",
    "MessageContext",
    "OrganisationRef",
    "PlaybookRef",
    "RenderedMessage",
    "RunRef",
    "TemplateError",
    "TEMPLATE_VARIABLES",
    "format_deadline",
    "pick_language",
    "render_message",
    "render_template_text",
    "template_language",
    "sample_context",
]


@dataclass(frozen=True)
class OrganisationRef:
    code: str
    name: str


@dataclass(frozen=True)
class ContactRef:
    name: str
    field: str  # field-of-work code, e.g. crisis-desk


@dataclass(frozen=True)
class PlaybookRef:
    id: str
    title: str


@dataclass(frozen=True)
class RunRef:
    id: int | str


@dataclass(frozen=True)
class MessageContext:
    """Everything a template may say; the field names are the template variables."""

    organisation: OrganisationRef
    contact: ContactRef
    playbook: PlaybookRef
    run: RunRef
    channel: str
    language: str
    ack_url: str
    ack_code: str  # short code for SMS/voice replies
    deadline: str  # local deadline, formatted for the language (see format_deadline)
    deadline_minutes: int
    test_kind: Literal["announced", "unannounced"]
    sender: str  # the coordinating organisation's name
    test_at: str = ""  # the planned moment of the test, local and formatted (announcements use it)

    def variables(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


TEMPLATE_VARIABLES: tuple[str, ...] = tuple(f.name for f in fields(MessageContext))


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body: str
    html: str | None
    language: str  # the language actually used, after fallback


class TemplateError(CommtestError):
    """A template could not be rendered (should have been caught at load time)."""


def _finalize(value: Any) -> Any:
    return "" if value is None else value


_TEXT_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize)
_HTML_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=True, finalize=_finalize)


@functools.lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> jinja2.Template:
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def render_template_text(source: str, context: MessageContext, *, html: bool = False) -> str:
    """Render one template string; raises Jinja's exceptions (the loader maps them to lines)."""
    return _compile(source, html).render(context.variables())


def _normalise(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def pick_language(available: list[str] | tuple[str, ...], requested: str, default: str) -> str:
    """The requested language, then its base language (nl-BE → nl), then ``default``."""
    by_norm = {_normalise(tag): tag for tag in available}
    wanted = _normalise(requested) if requested else ""
    if wanted in by_norm:
        return by_norm[wanted]
    base = wanted.split("-", 1)[0]
    if base in by_norm:
        return by_norm[base]
    return by_norm.get(_normalise(default), default)


def template_language(spec: PlaybookSpec, template: str, language: str) -> str:
    """The language ``render_message`` will use; build the context (its ``deadline``) in this one."""
    return pick_language(list(spec.templates.get(template, {})), language, spec.default_language)


def render_message(spec: PlaybookSpec, template: str, language: str, context: MessageContext) -> RenderedMessage:
    """Render template ``template`` of ``spec`` in ``language`` (with fallback)."""
    try:
        texts: dict[str, MessageTemplate] = spec.templates[template]
    except KeyError as exc:
        raise TemplateError(f"playbook {spec.id!r} has no template {template!r}") from exc
    used = pick_language(list(texts), language, spec.default_language)
    if used not in texts:
        raise TemplateError(f"template {template!r} has no text in {language!r} nor in {spec.default_language!r}")
    text = texts[used]
    try:
        subject = " ".join(render_template_text(text.subject, context).split()) if text.subject else ""
        body = render_template_text(text.body, context).strip()
        html = render_template_text(text.html, context, html=True) if text.html else None
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {template!r} ({used}) of playbook {spec.id!r}: {exc}") from exc
    return RenderedMessage(subject=subject, body=body, html=html, language=used)


def _babel_locale(language: str) -> Locale:
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse(language.split("-", 1)[0])
        except (UnknownLocaleError, ValueError):
            return Locale.parse("en")


def format_deadline(deadline_at: datetime, zone: str, language: str) -> str:
    """The deadline as the contact reads it: local time in ``zone``, formatted for ``language``.

    Examples: ``14 apr 2026, 10:15 CEST`` (nl), ``Apr 14, 2026, 10:15 AM CEST`` (en).
    """
    tz = ZoneInfo(zone)
    locale = _babel_locale(language)
    local = deadline_at.astimezone(tz)
    # Medium date + short time (no seconds), joined the way the locale joins them.
    joined = str(locale.datetime_formats["medium"]).format(
        format_time(local, "short", tzinfo=tz, locale=locale),
        format_date(local.date(), "medium", locale=locale),
    )
    return f"{joined} {local.tzname() or zone}"


# A fixed instant: sample renders must not depend on when validation runs.
_SAMPLE_DEADLINE = datetime(2026, 4, 14, 8, 15, tzinfo=timezone.utc)


def sample_context(language: str, playbook: PlaybookRef | None = None, channel: str = "email") -> MessageContext:
    """Realistic values for every template variable, used to check templates at load time."""
    return MessageContext(
        organisation=OrganisationRef(code="BE-NCCN", name="Nationaal Crisiscentrum"),
        contact=ContactRef(name="Duty desk", field="crisis-desk"),
        playbook=playbook or PlaybookRef(id="sample-playbook", title="Sample playbook"),
        run=RunRef(id=1),
        channel=channel,
        language=language,
        ack_url="https://commtest.example/ack/SAMPLE-TOKEN",
        ack_code="4821",
        deadline=format_deadline(_SAMPLE_DEADLINE, "Europe/Brussels", language),
        deadline_minutes=int(timedelta(minutes=15).total_seconds() // 60),
        test_kind="unannounced",
        sender="Benelux General Secretariat",
        test_at=format_deadline(_SAMPLE_DEADLINE, "Europe/Brussels", language),
    )
