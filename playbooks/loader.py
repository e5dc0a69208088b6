"""Load a playbook file and report EVERY problem at its exact place: ``FILE:LINE:COL: field: message``.

ruamel.yaml's round-trip loader keeps the line and column of every key and value, so a
pydantic error location such as ``('steps', 1, 'channel')`` is walked back through the
YAML tree to the node it came from. Checks that pydantic cannot do (templates rendered
with a sample context, cron expressions that never fire) run on the YAML tree part by
part, so one broken step does not hide a broken template.
"""
from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from commtest.clock import monotonic
from commtest.errors import Problem, ValidationFailed
from commtest.yaml_input import YamlRefused, bounded_yaml, refusal_problem, unreadable_problem
from playbooks.schedule_check import schedule_problems
from playbooks.schema import Loc, PlaybookSpec, ScheduleSpec, SpecError, reference_problems
from playbooks.template_sandbox import TIME_LIMIT
from playbooks.templates import (
    MessageContext,
    PlaybookRef,
    describe_render_error,
    render_template_text,
    sample_context,
    template_line_of,
)

__all__ = [
    "VALIDATION_SECONDS",
    "depends_on_time",
    "format_loc",
    "parse_playbook",
    "peek_id",
    "read_yaml",
    "template_problem",
]

_TEMPLATE_FIELDS = ("subject", "body", "html")
VALIDATION_SECONDS = 5.0  # for all the sample renders of one playbook together
_BUDGET_SPENT = "not checked: checking this playbook's templates took longer than"


def depends_on_time(failure: ValidationFailed) -> bool:
    """Whether a refusal came from a time budget: the same file may pass on a less loaded
    machine, so it must not be remembered as invalid."""
    return any(TIME_LIMIT in p.message or _BUDGET_SPENT in p.message for p in failure.problems)


@dataclass(frozen=True)
class _Issue:
    loc: Loc
    message: str
    template_line: int | None = None  # 1-based line inside a template, when known
    at_key: bool = False  # point at the key rather than its value (an unknown field)


def read_yaml(text: str, filename: str) -> Any:
    """The round-trip YAML tree of ``text``; a syntax error, an alias, nesting deeper than
    ``MAX_DEPTH`` or a second document becomes a located ``ValidationFailed``."""
    try:
        return bounded_yaml().load(text)
    except YamlRefused as exc:
        raise ValidationFailed([refusal_problem(exc, filename)]) from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        raise ValidationFailed(
            [Problem(filename, line, "", f"YAML syntax error: {what}; fix the YAML here", column)]
        ) from exc
    except YAMLError as exc:
        raise ValidationFailed([unreadable_problem(exc, text, filename)]) from exc


def parse_playbook(text: str, filename: str, *, deadline: float | None = None) -> PlaybookSpec:
    """Validate playbook ``text``; raises ``ValidationFailed`` listing every problem with its position.

    ``deadline`` (``time.monotonic()``) cuts the template checks short when it comes before
    their own budget: a caller reading a folder within a total budget passes it."""
    tree = read_yaml(text, filename)
    if not isinstance(tree, CommentedMap):
        raise ValidationFailed(
            [Problem(filename, 1, "", "a playbook is a YAML mapping (id:, title:, steps: ...); this file is not", 1)]
        )
    issues: list[_Issue] = []
    spec: PlaybookSpec | None = None
    plain = _to_plain(tree)
    try:
        spec = PlaybookSpec.model_validate(plain)
    except ValidationError as exc:
        issues.extend(_pydantic_issues(exc))
        # The model-level checks did not run; run them on the raw data so they are reported too.
        issues.extend(_Issue(loc, message) for loc, message in reference_problems(plain))
    issues.extend(_template_issues(tree, deadline))
    issues.extend(_email_subject_issues(tree))
    issues.extend(_schedule_issues(tree))
    if issues or spec is None:
        problems = _dedupe([_to_problem(tree, text, filename, issue) for issue in issues])
        raise ValidationFailed(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return spec


# -- pydantic errors -----------------------------------------------------------


def _pydantic_issues(exc: ValidationError) -> list[_Issue]:
    issues: list[_Issue] = []
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        error = (err.get("ctx") or {}).get("error")
        if isinstance(error, SpecError):
            issues.extend(_Issue(loc + rel, message) for rel, message in error.problems)
            continue
        issues.append(_Issue(loc, _message(err, loc), at_key=err["type"] == "extra_forbidden"))
    return issues


def _message(err: Any, loc: Loc) -> str:
    kind = err["type"]
    names = [p for p in loc if isinstance(p, str) and p != "[key]"]
    name = names[-1] if names else ""
    if kind == "missing":
        return f"required field is missing; add '{name}:' here"
    if kind == "extra_forbidden":
        known = _known_fields(loc[:-1])
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(known)}"
        return f"unknown field {name!r}; {hint}"
    if kind == "literal_error":
        expected = ", ".join(re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", "")))
        what = "channel" if ("channel" in names or "targets" in names) else name or "value"
        return f"unknown {what} {err['input']!r}; expected one of {expected}"
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    return f"{err['msg']} (got {err['input']!r})"


def _known_fields(loc: Loc) -> list[str]:
    """Field names of the model found at ``loc`` (for 'did you mean')."""
    annotation: Any = PlaybookSpec
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(part, str):
            info = annotation.model_fields.get(part)
            if info is None:
                return []
            annotation = info.annotation
            continue
        args = typing.get_args(annotation)
        annotation = args[-1] if args else Any  # list[X] -> X; dict[K, V] -> V
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return list(annotation.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """Drop ``| None`` and ``Annotated``."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


# -- checks on the YAML tree ---------------------------------------------------


def _template_issues(tree: CommentedMap, deadline: float | None = None) -> list[_Issue]:
    """Render every template text once with the sample context of its language.

    Each text has its own render budget, and all of them together ``VALIDATION_SECONDS``:
    a file of a thousand slow templates is refused in seconds, not hours."""
    templates = tree.get("templates")
    if not isinstance(templates, CommentedMap):
        return []
    ref = PlaybookRef(id=str(tree.get("id", "sample")), title=str(tree.get("title", "")))
    issues: list[_Issue] = []
    own = monotonic() + VALIDATION_SECONDS
    deadline = own if deadline is None else min(own, deadline)
    for name, languages in templates.items():
        if not isinstance(languages, CommentedMap):
            continue
        for language, texts in languages.items():
            if not isinstance(texts, CommentedMap):
                continue
            context = sample_context(str(language), ref)
            for fld in _TEMPLATE_FIELDS:
                source = texts.get(fld)
                if not isinstance(source, str):
                    continue
                loc = ("templates", name, language, fld)
                if monotonic() > deadline:
                    issues.append(_Issue(loc, f"{_BUDGET_SPENT} {VALIDATION_SECONDS:g} s in all; simplify them"))
                    return issues
                issue = _render_issue(loc, source, context, html=fld == "html", deadline=deadline)
                if issue:
                    issues.append(issue)
    return issues


def _render_issue(loc: Loc, source: str, context: MessageContext, *, html: bool,
                 deadline: float | None = None) -> _Issue | None:
    """The problem of rendering ``source`` with ``context``, or None when it renders."""
    try:
        render_template_text(source, context, html=html, deadline=deadline)
    except Exception as exc:  # noqa: BLE001 - e.g. a TypeError from {{ deadline_minutes + "x" }}
        return _Issue(loc, describe_render_error(exc), template_line_of(exc))
    return None


def template_problem(text: str, filename: str, loc: Loc, message: str, template_line: int | None) -> Problem:
    """A problem found in template ``loc`` (``("templates", name, language, field)``) of the
    playbook ``text``, at its ``FILE:LINE:COL`` (for checks made after loading, such as the
    render against the directory)."""
    tree = read_yaml(text, filename)
    return _to_problem(tree, text, filename, _Issue(loc, message, template_line))


def _email_subject_issues(tree: CommentedMap) -> list[_Issue]:
    steps, templates = tree.get("steps"), tree.get("templates")
    if not isinstance(steps, CommentedSeq) or not isinstance(templates, CommentedMap):
        return []
    issues: list[_Issue] = []
    reported: set[tuple[str, str]] = set()
    for step in steps:
        if not isinstance(step, CommentedMap) or step.get("channel") != "email":
            continue
        name = step.get("template")
        languages = templates.get(name) if isinstance(name, str) else None
        if not isinstance(languages, CommentedMap):
            continue
        for language, texts in languages.items():
            if not isinstance(texts, CommentedMap) or (name, language) in reported:
                continue
            subject = texts.get("subject")
            if not isinstance(subject, str) or not subject.strip():
                reported.add((name, language))
                issues.append(
                    _Issue(
                        ("templates", name, language, "subject"),
                        f"step {step.get('id')!r} sends e-mail with this template, so it needs a subject",
                    )
                )
    return issues


def _schedule_issues(tree: CommentedMap) -> list[_Issue]:
    schedules = tree.get("schedules")
    if not isinstance(schedules, CommentedSeq):
        return []
    zone = tree.get("timezone", PlaybookSpec.model_fields["timezone"].default)
    issues: list[_Issue] = []
    for i, raw in enumerate(schedules):
        try:
            schedule = ScheduleSpec.model_validate(_to_plain(raw))
            for rel, message in schedule_problems(schedule, str(zone)):
                issues.append(_Issue(("schedules", i) + rel, message))
        except (ValidationError, ValueError, LookupError):
            continue  # the schema errors are reported already (a bad zone included)
    return issues


# -- positions -----------------------------------------------------------------


def format_loc(loc: Loc) -> str:
    """``('steps', 1, 'channel')`` → ``steps[1].channel``."""
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _to_problem(tree: CommentedMap, text: str, filename: str, issue: _Issue) -> Problem:
    line, column, node = _locate(tree, issue.loc + ("[key]",) if issue.at_key else issue.loc)
    if issue.template_line and isinstance(node, str):
        if isinstance(node, LiteralScalarString):
            # A "|" block: content line n sits n lines below the indicator.
            line += issue.template_line
            lines = text.splitlines()
            if line - 1 < len(lines):
                content = lines[line - 1]
                column = len(content) - len(content.lstrip()) + 1
        elif issue.template_line > 1:
            # Quoted or folded text: lines do not map one to one; name the template line.
            return Problem(
                filename, line, format_loc(issue.loc), f"{issue.message} (template line {issue.template_line})", column
            )
    return Problem(filename, line, format_loc(issue.loc), issue.message, column)


def _locate(tree: CommentedMap, loc: Loc) -> tuple[int, int, Any]:
    """1-based (line, column) of the node at ``loc``, and the node.

    A missing key points at its parent; a mapping or list value points at its key; a
    dict-key error (``[key]``) points at the key itself.
    """
    node: Any = tree
    line, col = 0, 0
    parent: Any = None
    last: Any = None
    for part in loc:
        if part == "[key]":
            if isinstance(parent, CommentedMap) and last in parent:
                line, col = parent.lc.key(last)
            break
        if isinstance(node, CommentedMap) and part in node:
            parent, last = node, part
            child = node[part]
            if isinstance(child, (CommentedMap, CommentedSeq)):
                line, col = node.lc.key(part)
            else:
                line, col = node.lc.value(part)
            node = child
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            parent, last = node, part
            line, col = node.lc.item(part)
            node = node[part]
        else:
            break  # missing: keep the parent's position
    return line + 1, col + 1, node


def _to_plain(node: Any) -> Any:
    """ruamel's round-trip types → plain Python, so pydantic sees ordinary values."""
    if isinstance(node, dict):
        return {_to_plain(k): _to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_to_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for p in problems:
        key = (p.line, p.column, p.field, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


def peek_id(text: str) -> tuple[str, int, int] | None:
    """The playbook ``id`` and its 1-based (line, column), if the file is YAML enough to say."""
    try:
        tree = bounded_yaml().load(text)
    except YAMLError:
        return None
    if not isinstance(tree, CommentedMap) or not isinstance(tree.get("id"), str):
        return None
    line, col = tree.lc.value("id")
    return str(tree["id"]), line + 1, col + 1
