"""The Jinja2 sandbox of playbook templates, bounded in time and in size.

Jinja's ``SandboxedEnvironment`` keeps a template away from Python's internals, but not
from work: two nested ``range(100000)`` loops run 10^10 times, ``"x" * 10**9`` asks for
a gigabyte. A playbook is written by people and checked by commtest before it runs, so
each render here has

* a **time budget** (``RenderLimits.seconds``), checked at the start of every block the
  template runs (each loop iteration, each ``if`` body, each macro call) and at every call,
  filter and operator, so even a loop that prints nothing is stopped;
* a **size cap** (``RenderLimits.max_chars``) on the output, counted while it is generated,
  and on every value the template makes: ``*``, ``+``, ``~``, ``%``, ``**``, ``range()``,
  widths given to ``center``/``format``/``indent`` and friends are checked *before* Python
  builds the value, so the cap is never overshot by more than one step.

Either bound raises ``RenderLimitExceeded``, a ``jinja2.TemplateError`` that names the limit.
Templates are also immutable here (``list.append`` is refused): a message has no business
changing the data it renders. The constant folding of Jinja's optimizer is off, so no
template code runs at compile time, outside the budget.
"""
from __future__ import annotations

import contextvars
import functools
import re
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import jinja2
from jinja2.compiler import CodeGenerator, CompilerExit, Frame
from jinja2.runtime import new_context
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from commtest.clock import monotonic

__all__ = [
    "MAX_RANGE",
    "RENDER_LIMITS",
    "BoundedSandbox",
    "RenderLimitExceeded",
    "RenderLimits",
    "TIME_LIMIT",
    "generate_bounded",
]

TIME_LIMIT = "rendering took too long"  # how a time-budget refusal begins (it depends on the machine's load)
MAX_RANGE = 10_000  # range() longer than this is refused (Jinja's own bound is 100,000)
_MAX_INT_BITS = 10_000  # about 3,000 digits: more than any message needs


@dataclass(frozen=True)
class RenderLimits:
    seconds: float = 1.0  # for one template text (a subject, a body)
    max_chars: int = 256 * 1024  # of output, and of any value made while rendering

    def describe(self) -> str:
        return f"{self.seconds:g} s and {self.max_chars:,} characters per template text"


RENDER_LIMITS = RenderLimits()


class RenderLimitExceeded(jinja2.TemplateRuntimeError):
    """A render went over its time budget or size cap; ``limit`` says which, for people."""

    def __init__(self, what: str, limit: str) -> None:
        super().__init__(f"{what}; the limit is {limit}")
        self.what = what
        self.limit = limit


@dataclass
class _Budget:
    limits: RenderLimits
    deadline: float

    def check_time(self) -> None:
        if monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"{TIME_LIMIT} (a loop that runs too often?)", f"{self.limits.seconds:g} s per template text"
            )


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("commtest_render_budget", default=None)


def _cap() -> int:
    budget = _BUDGET.get()
    return budget.limits.max_chars if budget is not None else RENDER_LIMITS.max_chars


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.check_time()


def _too_big(size: int, what: str) -> None:
    cap = _cap()
    if size > cap:
        raise RenderLimitExceeded(f"{what} would be {size:,} characters long", f"{cap:,} characters")


def _check_value(value: Any, what: str = "a value") -> Any:
    """Refuse a value made while rendering that is over the cap."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value.bit_length() > _MAX_INT_BITS:
            raise RenderLimitExceeded(f"{what} is a number of {value.bit_length():,} bits", f"{_MAX_INT_BITS:,} bits")
        return value
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        _too_big(len(value), what)
    return value


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset, range)) else None


def _check_args(args: tuple[Any, ...], kwargs: dict[str, Any], *, ints: bool = True) -> None:
    """Arguments over the cap are refused; so are integers over it (a width, a count)."""
    cap = _cap()
    for value in (*args, *kwargs.values()):
        size = _sized(value)
        if size is not None and not isinstance(value, range):
            _too_big(size, "an argument")
        elif ints and isinstance(value, int) and not isinstance(value, bool) and abs(value) > cap:
            raise RenderLimitExceeded(f"a width or count of {value:,} was given", f"{cap:,}")


_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent_format(fmt: str, args: Any) -> None:
    cap = _cap()
    for width, precision in _PERCENT.findall(fmt):
        for n in (width, precision):
            if n == "*":
                values = args if isinstance(args, tuple) else (args,)
                _check_args(values, {})
            elif n and int(n) > cap:
                raise RenderLimitExceeded(f"a format width of {int(n):,} was given", f"{cap:,}")


def _check_brace_format(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    cap = _cap()
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError:
        return  # the call itself reports the malformed format
    for _literal, _field, spec, _conversion in parsed:
        if not spec:
            continue
        if "{" in spec:  # a width taken from the arguments
            _check_args(args, kwargs)
        for n in re.findall(r"\d+", spec):
            if int(n) > cap:
                raise RenderLimitExceeded(f"a format width of {int(n):,} was given", f"{cap:,}")


def _lines(text: str) -> int:
    return text.count("\n") + 1


def _estimate(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Size checks for the filters and ``str`` methods whose output multiplies their input."""
    if not isinstance(value, str):
        return
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        if len(new) > len(old):
            count = value.count(old) if old else len(value) + 1
            _too_big(len(value) + count * (len(new) - len(old)), "the text after replace")
    elif name == "indent":
        width = args[0] if args else kwargs.get("width", 4)
        per_line = len(width) if isinstance(width, str) else int(width) if isinstance(width, int) else 0
        _too_big(len(value) + _lines(value) * per_line, "the indented text")
    elif name == "wordwrap":
        width = args[0] if args else kwargs.get("width", 79)
        wrap = args[2] if len(args) >= 3 else kwargs.get("wrapstring") or "\n"
        if isinstance(width, int) and width > 0 and isinstance(wrap, str):
            _too_big(len(value) + (len(value) // width + _lines(value)) * len(wrap), "the wrapped text")
    elif name == "format":
        _check_percent_format(value, args or kwargs)


def _materialise(items: Any) -> Any:
    """An iterable for ``join`` as a list, refused when it has more items than the cap."""
    if _sized(items) is not None or isinstance(items, jinja2.Undefined):
        return items
    cap = _cap()
    out = list(islice(iter(items), cap + 1))
    _too_big(len(out), "the list to join")
    return out


def _check_join(sep: Any, items: Any) -> Any:
    items = _materialise(items)
    size = _sized(items)
    if isinstance(sep, str) and size:
        _too_big(len(sep) * (size - 1), "the joined text")
    return items


def _guard_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    passes_context = getattr(func, "jinja_pass_arg", None) is not None

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        lead = 2 if passes_context else 1  # (context,) value
        head, value, rest = args[: lead - 1], args[lead - 1] if len(args) >= lead else None, args[lead:]
        if name == "join":
            value = _check_join(rest[0] if rest else kwargs.get("d", ""), value)
        _check_value(value, "the filtered value")
        _check_args(rest, kwargs, ints=name != "format")
        _estimate(name, value, rest, kwargs)
        return _check_value(func(*head, value, *rest, **kwargs), f"the result of the {name} filter")

    return guarded


def _bounded_range(*args: int) -> range:
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise RenderLimitExceeded(f"range() of {len(rng):,} numbers was asked for", f"{MAX_RANGE:,}")
    return rng


class _BoundedNamespace(Namespace):
    def __setitem__(self, name: str, value: Any) -> None:
        _tick()
        Namespace.__setitem__(self, name, _check_value(value, f"namespace value {name!r}"))


class _BudgetCodeGenerator(CodeGenerator):
    """Jinja's code generator, plus a budget check at the start of every block and a
    size check on every ``~`` concatenation."""

    def blockvisit(self, nodes: Any, frame: Frame) -> None:
        try:
            self.writeline("environment.tick()")  # instead of Jinja's "pass": a block is never empty
            for node in nodes:
                self.visit(node, frame)
        except CompilerExit:
            pass

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked(")
        super().visit_Concat(node, frame)
        self.write(")")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The environment of playbook templates (see the module docstring)."""

    code_generator_class = _BudgetCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%", "//"})
    _unsafe_methods = frozenset({"translate", "maketrans", "expandtabs"})  # output unbounded by their arguments

    def __init__(self, **options: Any) -> None:
        super().__init__(optimized=False, **options)
        self.globals.pop("lipsum", None)  # lipsum(n=10**9) is one Python call: no budget check inside
        self.globals["range"] = _bounded_range
        self.globals["namespace"] = _BoundedNamespace
        self.filters = {name: _guard_filter(name, f) for name, f in self.filters.items()}

    # -- called by the generated code
    def tick(self) -> None:
        _tick()

    def checked(self, value: Any) -> Any:
        return _check_value(value, "the joined text")

    # -- the sandbox's hooks
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if isinstance(obj, str) and attr in self._unsafe_methods:
            return False
        return super().is_safe_attribute(obj, attr, value)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                size = _sized(seq)
                if size is not None and isinstance(n, int) and not isinstance(n, bool):
                    _too_big(size * max(n, 0), "the repeated value")
            if isinstance(left, int) and isinstance(right, int):
                bits = left.bit_length() + right.bit_length()
                if bits > _MAX_INT_BITS:
                    raise RenderLimitExceeded(f"a product of about {bits:,} bits", f"{_MAX_INT_BITS:,} bits")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            bits = max(left.bit_length(), 1) * right
            if bits > _MAX_INT_BITS and abs(left) > 1:
                raise RenderLimitExceeded(f"a power of about {bits:,} bits", f"{_MAX_INT_BITS:,} bits")
        elif operator == "+":
            a, b = _sized(left), _sized(right)
            if a is not None and b is not None:
                _too_big(a + b, "the sum")
        elif operator == "%" and isinstance(left, str):
            _check_percent_format(left, right)
        return _check_value(super().call_binop(context, operator, left, right), "the result")

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805,B902
        _tick()
        wrapped = getattr(__obj, "__wrapped__", None)  # str.format / format_map, wrapped by the sandbox
        target = wrapped if wrapped is not None else __obj
        owner = getattr(target, "__self__", None)
        name = getattr(target, "__name__", "")
        if isinstance(owner, str) and name in ("format", "format_map"):
            _check_brace_format(owner, args, kwargs)
            _check_args(args, kwargs, ints=False)
        else:
            if isinstance(owner, str) and name == "join" and args:
                args = (_check_join(owner, args[0]), *args[1:])
            _check_args(args, kwargs)
            if isinstance(owner, str):
                _estimate(name, owner, args, kwargs)
        return _check_value(super().call(__context, __obj, *args, **kwargs), "the result of a call")


def generate_bounded(template: jinja2.Template, variables: dict[str, Any], limits: RenderLimits,
                     *, deadline: float | None = None) -> str:
    """Render ``template`` within ``limits`` (and before ``deadline``, a ``monotonic()`` instant,
    when given): the output is counted while it is generated, the time checked as it runs."""
    end = monotonic() + limits.seconds
    budget = _Budget(limits, end if deadline is None else min(end, deadline))
    token = _BUDGET.set(budget)
    try:
        budget.check_time()
        out: list[str] = []
        size = 0
        for chunk in _generate(template, variables):
            size += len(chunk)
            if size > limits.max_chars:
                raise RenderLimitExceeded("the rendered text is too long", f"{limits.max_chars:,} characters")
            out.append(chunk)
        return "".join(out)
    finally:
        _BUDGET.reset(token)


def _generate(template: jinja2.Template, variables: dict[str, Any]) -> Iterator[str]:
    """``template.generate(variables)``, without its per-call cost: Jinja merges the globals
    (a ``ChainMap`` of the environment's and the template's) into the variables by walking the
    chain each time; they are flattened once per template here. Errors are reported as
    ``generate`` reports them (``handle_exception``: frames carry the template's line numbers)."""
    flat: dict[str, Any] | None = template.__dict__.get("_flat_globals")
    if flat is None:
        flat = dict(template.globals)
        template._flat_globals = flat  # type: ignore[attr-defined]
    # (No ``globals`` for the context either: Jinja only reads them to tell a template's exports
    # from its globals, for ``{% import %}``, which a playbook template cannot do: no loader.)
    context = new_context(template.environment, template.name, template.blocks, {**flat, **variables}, True)
    try:
        yield from template.root_render_func(context)
    except Exception:  # noqa: BLE001 - rewritten and raised again by Jinja
        yield template.environment.handle_exception()
