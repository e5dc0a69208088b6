"""A YAML reader for files people write (playbooks, the directory, the sandbox script) that
refuses what only an attacker or an accident writes, before it costs anything.

ruamel.yaml's round-trip reader, with three bounds:

* **no aliases** (``*name``): our files never need them, and nine nested aliases of nine
  (the "billion laughs") expand to 9^9 values as soon as anything walks the tree;
* **nesting at most** ``MAX_DEPTH`` **levels**: 100,000 nested brackets would otherwise
  take seconds to scan and end in a ``RecursionError``; the flow level is checked by the
  scanner, at the bracket, so the refusal comes after reading ``MAX_DEPTH`` of them;
* **one document**: a second ``---`` document is refused, not parsed;
* **no explicit tags** beyond the plain ones (``!!str``, ``!!int`` ...): ``!!set``, ``!!binary``,
  ``!!python/...`` or ``!custom`` ask the library for constructions our files never need
  (and some of them crash it).

A value that cannot be built (a 5,000-digit integer, the 13th month of a date) becomes a
located error too, instead of a ``ValueError`` from deep inside the library. Every
refusal is a ``YamlRefused`` (a ``MarkedYAMLError``) that says where and what to do.
"""
from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scanner import RoundTripScanner

from commtest.errors import Problem

__all__ = ["MAX_DEPTH", "YamlRefused", "bounded_yaml", "refusal_problem", "unreadable_problem"]

MAX_DEPTH = 64


_CORE = "tag:yaml.org,2002:"
# Explicit tags that only restate what a plain value is; any other (!!set, !!omap, !!binary,
# !!python/..., !custom) asks the library for a construction our files never need.
_PLAIN_TAGS = frozenset(_CORE + name for name in ("str", "int", "float", "bool", "null", "seq", "map"))


def _short(tag: str) -> str:
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


class YamlRefused(MarkedYAMLError):
    """A YAML input was refused by a bound, or holds a value that cannot be built."""


class _BoundedScanner(RoundTripScanner):
    def fetch_flow_collection_start(self, TokenClass: Any, to_push: str) -> None:  # noqa: N803 - ruamel's name
        if len(self.flow_context) >= MAX_DEPTH:
            raise YamlRefused(
                None, None,
                f"nested more than {MAX_DEPTH} levels deep (brackets inside brackets); "
                "a commtest file never needs that many: remove the extra nesting",
                self.reader.get_mark(),
            )
        super().fetch_flow_collection_start(TokenClass, to_push)


class _BoundedComposer(Composer):
    _depth = 0

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # aliases are refused, so an anchor names nothing: no warning

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.get_event()
            raise YamlRefused(
                None, None,
                f"YAML aliases (*{event.anchor}) are not allowed in commtest files; write the value out in full",
                event.start_mark,
            )
        event = self.parser.peek_event()
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!" and tag not in _PLAIN_TAGS:
            raise YamlRefused(
                None, None,
                f"YAML tags ({_short(tag)}) are not used in commtest files; remove the tag and write the plain value",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlRefused(
                    None, None,
                    f"nested more than {MAX_DEPTH} levels deep; a commtest file never needs that many: "
                    "remove the extra nesting",
                    self.parser.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        try:
            return super().get_single_node()
        except MarkedYAMLError as exc:
            if exc.problem == "but found another document":
                raise YamlRefused(
                    None, None,
                    "a second YAML document ('---') starts here; a commtest file holds exactly one: "
                    "remove it, or put it in a file of its own",
                    exc.problem_mark,
                ) from exc
            raise


class _BoundedConstructor(RoundTripConstructor):
    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError, ArithmeticError, LookupError, AttributeError) as exc:
            why = str(exc).split("; use sys.set_int_max_str_digits")[0]  # Python's advice is not for our users
            raise YamlRefused(None, None, f"this value cannot be read: {why}", node.start_mark) from exc


def bounded_yaml() -> YAML:
    """A round-trip ``YAML`` (line and column of every key kept) with the bounds above."""
    yaml = YAML(typ="rt")
    yaml.Scanner = _BoundedScanner
    yaml.Composer = _BoundedComposer
    yaml.Constructor = _BoundedConstructor
    return yaml


def unreadable_problem(exc: YAMLError, text: str, filename: str) -> Problem:
    """A YAML error without a mark, such as a control character the YAML reader refuses."""
    if isinstance(exc, ReaderError) and isinstance(exc.position, int):
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
        return Problem(filename, line, "", f"character U+{code:04X} is not allowed in YAML text "
                                           "(a binary file, or a control character pasted in?); remove it", column)
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return Problem(filename, None, "", f"not YAML text that can be read: {first}")


def refusal_problem(exc: YamlRefused, filename: str) -> Problem:
    """The ``FILE:LINE:COL: message`` of a refusal."""
    mark = exc.problem_mark
    line = mark.line + 1 if mark is not None else None
    column = mark.column + 1 if mark is not None else None
    return Problem(filename, line, "", str(exc.problem), column)
