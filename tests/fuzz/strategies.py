"""Strategies shared by the fuzz tests: text that is almost a commtest file, with the
characters and YAML/Jinja constructs that have broken readers before."""
from __future__ import annotations

from hypothesis import strategies as st

# Pieces that stress a YAML reader: aliases, tags, flow brackets, documents, odd scalars.
YAML_PIECES = [
    "&a ", "*a", "*b", "&b [*a, *a]", "[", "]", "{", "}", ",", ": ", "- ", "\n", "  ", "\t", "---\n", "...\n",
    "? ", "!!binary ", "!!int ", "!!float ", "!!timestamp ", "!!set ", "!!omap ", "!!python/object:os.system ",
    "!foo ", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "|", "|-\n", ">", "'", '"', "#", "\\", "\x00", "\x07", "\x1b",
    "\ufeff", "\u2028", "\ud7ff", "\U0001F600", "9" * 5000, "-0x" + "f" * 40, "2026-13-45", "2026-02-30 25:61:61",
    "1e99999", ".inf", ".nan", "~", "null", "yes", "no", "<<: ", "<<: *a", "{{", "}}", "{%", "%}", "[" * 200,
    "{" * 100, "é", "\r\n", "\r",
]  # fmt: skip


def mutated(base: str) -> st.SearchStrategy[str]:
    """``base`` with a few pieces inserted and slices deleted, at places the fuzzer picks."""
    piece = st.sampled_from(YAML_PIECES) | st.text(max_size=12)
    edit = st.tuples(st.integers(0, len(base)), piece, st.integers(0, 8))

    def apply(edits: list[tuple[int, str, int]]) -> str:
        text = base
        for pos, insert, delete in sorted(edits, reverse=True):
            pos = min(pos, len(text))
            text = text[:pos] + insert + text[pos + delete:]
        return text

    return st.lists(edit, max_size=6).map(apply)


SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
    | st.sampled_from(["15m", "soon", "PT15M", "0", "email", "pigeon", "en", "nl-BE", "klingon", "mon-fri",
                       "09:00", "25:00", "0 10 * 4 mon-fri", "0 10 30 2 *", "{{ ack_url }}", "{{ nope }}",
                       "BE-NCCN", "crisis-desk", "+32 2 555 01 10", "desk@x.example", "not-an-address"])
)


def nested(keys: list[str]) -> st.SearchStrategy[object]:
    """Nested mappings and lists whose keys are mostly the real field names."""
    key = st.sampled_from(keys) | st.text(min_size=1, max_size=8)
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=6),
        max_leaves=30,
    )


# -- Jinja templates --------------------------------------------------------------

EXPRESSIONS = [
    "organisation.name", "organisation.nmae", "contact.name", "ack_url", "ack_code", "deadline", "deadline_minutes",
    "test_kind", "run.id", "range(10)", "range(100000)", "range(9999)", "'x' * 100", "'x' * 10**9", "9 ** 99",
    "9 ** 9 ** 9", "[1, 2, 3]", "{'a': 1}", "none", "loop", "x", "lipsum(3)", "namespace(a=1)", "cycler(1, 2)",
    "''.__class__", "().__class__.__bases__", "ack_url.__class__.__mro__", "self", "'%s' % 1", "'%99999999d' % 1",
    "'{:>999999999}'.format(1)", "'a'.ljust(10**9)", "'ab'.replace('a', 'aa')", "organisation.name ~ ack_url",
    "[1] * 10**8", "10**10**10", "'x'.join(range(10)|map('string'))", "1 / 0", "ack_code + 1", "undefined_name",
]  # fmt: skip
FILTERS = [
    "upper", "join(',')", "center(10)", "center(1000000000)", "replace('a', 'bb')", "indent(4)", "indent('x' * 9999)",
    "wordwrap(5)", "format(1)", "int", "list", "length", "sort", "unique", "batch(3)", "slice(3)", "slice(999999999)",
    "tojson", "e", "safe", "striptags", "truncate(5)", "sum", "first", "last", "default('x')", "attr('x')",
    "map('upper')", "select", "reverse", "string", "xmlattr", "urlize", "title", "pprint", "filesizeformat", "round",
    "nofilter",
]  # fmt: skip


def _output(expr: str, flt: str | None) -> str:
    return "{{ " + expr + (f"|{flt}" if flt else "") + " }}"


TEMPLATE_LEAF = (
    st.builds(_output, st.sampled_from(EXPRESSIONS), st.none() | st.sampled_from(FILTERS))
    | st.text(max_size=15)
    | st.sampled_from(["{{", "}}", "{%", "%}", "{% endfor %}", "{% if %}", "{# c #}", "{% raw %}", "{%- -%}"])
)


def _block(kind: str, expr: str, body: str) -> str:
    if kind == "for":
        return "{% for i in " + expr + " %}" + body + "{% endfor %}"
    if kind == "if":
        return "{% if " + expr + " %}" + body + "{% else %}x{% endif %}"
    if kind == "set":
        return "{% set ns = namespace(s='x') %}{% set ns.s = " + expr + " %}" + body
    if kind == "macro":
        return "{% macro m(n) %}" + body + "{{ m(n) }}{% endmacro %}{{ m(1) }}"
    return "{% filter upper %}" + body + "{% endfilter %}"


TEMPLATES = st.recursive(
    TEMPLATE_LEAF,
    lambda inner: st.builds(_block, st.sampled_from(["for", "if", "set", "macro", "filter"]),
                            st.sampled_from(EXPRESSIONS), inner)
    | st.lists(inner, min_size=2, max_size=4).map("".join),
    max_leaves=8,
)
