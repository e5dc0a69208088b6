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

from commtest.errors import CommtestError
from playbooks.french_articles import FILTERS as FRENCH_FILTERS
from playbooks.template_sandbox import RENDER_LIMITS, BoundedSandbox, RenderLimitExceeded, RenderLimits, generate_bounded

if TYPE_CHECKING:
    from playbooks.schema import MessageTemplate, PlaybookSpec

__all__ = [
    "ContactRef",
    "MessageContext",
    "OrganisationRef",
    "PlaybookRef",
    "RENDER_LIMITS",
    "RenderLimitExceeded",
    "RenderLimits",
    "RenderedMessage",
    "RunRef",
    "TemplateError",
    "TEMPLATE_VARIABLES",
    "describe_render_error",
    "format_deadline",
    "pick_language",
    "render_message",
    "render_template_text",
    "template_language",
    "template_line_of",
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
        # Read for every field of every message (subject, body, html): built once per context.
        cached: dict[str, Any] | None = self.__dict__.get("_variables")
        if cached is None:
            cached = {name: getattr(self, name) for name in TEMPLATE_VARIABLES}
            object.__setattr__(self, "_variables", cached)
        return dict(cached)


TEMPLATE_VARIABLES: tuple[str, ...] = tuple(f.name for f in fields(MessageContext))


@dataclass(frozen=True)
class RenderedMessage:
    subject: str
    body: str
    html: str | None
    language: str  # the language actually used, after fallback


class TemplateError(CommtestError):
    """A template could not be rendered (should have been caught at load time).

    ``template``, ``language`` (the text used, after fallback), ``field`` (subject, body
    or html) and ``line`` (inside the template) say where, when known."""

    def __init__(self, message: str, *, template: str = "", language: str = "", field: str = "",
                 line: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.template = template
        self.language = language
        self.field = field
        self.line = line
        self.reason = reason or message  # the failure itself, without the "template X (nl) of playbook Y" prefix


def _finalize(value: Any) -> Any:
    return "" if value is None else value


_TEXT_ENV = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize)
_HTML_ENV = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=True, finalize=_finalize)
# French articles before a name: {{ organisation.name | du }} -> "du Centre national de crise".
_TEXT_ENV.filters.update(FRENCH_FILTERS)
_HTML_ENV.filters.update(FRENCH_FILTERS)


@functools.lru_cache(maxsize=512)
def _compile(source: str, html: bool) -> jinja2.Template:
    return (_HTML_ENV if html else _TEXT_ENV).from_string(source)


def render_template_text(
    source: str,
    context: MessageContext,
    *,
    html: bool = False,
    limits: RenderLimits = RENDER_LIMITS,
    deadline: float | None = None,
) -> str:
    """Render one template string within ``limits`` (see ``template_sandbox``); raises Jinja's
    exceptions, ``RenderLimitExceeded`` included (the loader maps them to lines)."""
    if len(source) > limits.max_chars:
        # Longer than any output it may produce: refused before Jinja compiles it.
        raise RenderLimitExceeded(f"the template is {len(source):,} characters long", f"{limits.max_chars:,} characters")
    return generate_bounded(_compile(source, html), context.variables(), limits, deadline=deadline)


def template_line_of(exc: BaseException) -> int | None:
    """The 1-based template line an error was raised on: Jinja rewrites tracebacks so that
    template frames carry the template's line number."""
    line = getattr(exc, "lineno", None) if isinstance(exc, jinja2.TemplateSyntaxError) else None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _normalise(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def pick_language(available: list[str] | tuple[str, ...], requested: str, default: str) -> str:
    """The requested language, then its base language (nl-BE → nl), then ``default``."""
    return _pick_language(tuple(available), requested, default)


@functools.lru_cache(maxsize=1024)  # asked two or three times per message, always the same few
def _pick_language(available: tuple[str, ...], requested: str, default: str) -> str:
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
    subject = " ".join(_render_field(spec, template, used, "subject", text.subject, context).split())
    body = _render_field(spec, template, used, "body", text.body, context).strip()
    html = _render_field(spec, template, used, "html", text.html, context) if text.html else None
    return RenderedMessage(subject=subject, body=body, html=html, language=used)


def _render_field(spec: PlaybookSpec, template: str, language: str, field: str, source: str | None,
                  context: MessageContext) -> str:
    if not source:
        return ""
    try:
        return render_template_text(source, context, html=field == "html")
    except Exception as exc:  # noqa: BLE001 - any failure of one text is a TemplateError, never a crash of the caller
        reason = describe_render_error(exc)
        raise TemplateError(
            f"template {template!r} ({language}) of playbook {spec.id!r}: {field}: {reason}",
            template=template, language=language, field=field, line=template_line_of(exc), reason=reason,
        ) from exc


def describe_render_error(exc: BaseException) -> str:
    """What went wrong while rendering, for people (the loader and the engine say it the same way)."""
    if isinstance(exc, RenderLimitExceeded):
        return f"template exceeds a render limit: {exc.message}; simplify it"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"template syntax error: {exc.message}"
    if isinstance(exc, jinja2.UndefinedError):
        return f"template uses an undefined variable: {exc.message}; available: {', '.join(TEMPLATE_VARIABLES)}"
    if isinstance(exc, jinja2.TemplateError):  # includes the sandbox's SecurityError
        return f"template error: {exc}"
    if isinstance(exc, RecursionError):
        return "template calls itself without end (a macro that calls itself?)"
    if isinstance(exc, MemoryError):
        return "template needs more memory than there is"
    return f"template cannot be rendered: {type(exc).__name__}: {exc}"


@functools.lru_cache(maxsize=64)
def _babel_locale(language: str) -> Locale:
    # English readers here are European: day-month-year and a 24-hour clock, as in every page and
    # report (commtest.i18n), never the US style Babel gives plain ``en``.
    if language.split("-", 1)[0] == "en":
        return Locale.parse("en_GB")
    try:
        return Locale.parse(language.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        try:
            return Locale.parse(language.split("-", 1)[0])
        except (UnknownLocaleError, ValueError):
            return Locale.parse("en_GB")


def format_deadline(deadline_at: datetime, zone: str, language: str) -> str:
    """The deadline as the contact reads it: local time in ``zone``, formatted for ``language``.

    Examples: ``14 apr 2026, 10:15 CEST`` (nl), ``14 Apr 2026, 10:15 CEST`` (en).
    """
    # The text shows whole minutes, and offsets change on whole hours: one formatting per minute,
    # zone and language serves every attempt of a wave (Babel's formatting is the costly part).
    return _format_minute(deadline_at.replace(second=0, microsecond=0), zone, language)


@functools.lru_cache(maxsize=1024)
def _format_minute(deadline_at: datetime, zone: str, language: str) -> str:
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
