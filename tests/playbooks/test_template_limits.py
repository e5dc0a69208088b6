"""The template sandbox is bounded in time and size, at validation and at send time alike."""
from __future__ import annotations

import time

import pytest

from playbooks.loader import parse_playbook
from playbooks.template_sandbox import RenderLimitExceeded, RenderLimits
from playbooks.templates import TemplateError, render_message, render_template_text, sample_context
from tests.hostile import NESTED_LOOPS_SILENT, NESTED_RANGES, playbook_with_template
from tests.playbooks.conftest import VALID

CTX = sample_context("en")


def refused(source: str, **kw: object) -> str:
    with pytest.raises(RenderLimitExceeded) as err:
        render_template_text(source, CTX, **kw)  # type: ignore[arg-type]
    return str(err.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (NESTED_RANGES, "range() of 100,000 numbers was asked for; the limit is 10,000"),
        ("{{ 'x' * 1000000000 }}", "the repeated value would be 1,000,000,000 characters long"),
        ("{{ (range(10000)|list) * 10000 }}", "the repeated value would be 100,000,000 characters long"),
        ("{{ 9 ** (9 ** 9) }}", "a power of about"),
        ("{{ 'x'|center(1000000000) }}", "a width or count of 1,000,000,000 was given"),
        ("{{ 'x'.ljust(1000000000) }}", "a width or count of 1,000,000,000 was given"),
        ("{{ '{:>999999999}'.format(1) }}", "a format width of 999,999,999 was given"),
        ("{{ '%999999999d' % 1 }}", "a format width of 999,999,999 was given"),
        ("{{ '%999999999d'|format(1) }}", "a format width of 999,999,999 was given"),
        ("{{ ('x' * 200000)|replace('x', 'yyyyyyyy') }}", "the text after replace would be 1,600,000 characters long"),
        ("{{ range(10000)|join('x' * 200000) }}", "the joined text would be"),
        ("{{ ('x' * 200000) ~ ('x' * 200000) }}", "the joined text would be 400,000 characters long"),
        ("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
         "would be 524,288 characters long"),
        ("{% for i in range(10000) %}{{ 'x' * 1000 }}{% endfor %}", "the rendered text is too long"),
    ],
)
def test_a_template_that_would_make_too_much_is_refused_before_python_builds_it(source: str, message: str) -> None:
    start = time.monotonic()
    assert message in refused(source)
    assert time.monotonic() - start < 0.5


def test_a_loop_that_prints_nothing_is_stopped_by_the_time_budget() -> None:
    start = time.monotonic()
    message = refused(NESTED_LOOPS_SILENT, limits=RenderLimits(seconds=0.2))
    assert time.monotonic() - start < 1.5
    assert message == "rendering took too long (a loop that runs too often?); the limit is 0.2 s per template text"


def test_a_deadline_given_by_the_caller_shortens_the_budget() -> None:
    from commtest.clock import monotonic

    start = time.monotonic()
    refused(NESTED_LOOPS_SILENT, deadline=monotonic() + 0.1)
    assert time.monotonic() - start < 1


def test_templates_cannot_change_the_data_they_render() -> None:
    with pytest.raises(Exception, match="access to attribute 'append' of 'list' object is unsafe"):
        render_template_text("{% set l = [1] %}{{ l.append(2) }}", CTX)


def test_lipsum_is_not_available() -> None:
    with pytest.raises(Exception, match="'lipsum' is undefined"):
        render_template_text("{{ lipsum(1) }}", CTX)


def test_ordinary_templates_render_as_before() -> None:
    source = (
        "{% filter upper %}{{ organisation.name }}{% endfilter %} {{ '%s-%s'|format(1, 2) }} {{ '{} {}'.format(3, 4) }} "
        "{% for w in ['a', 'b'] %}{{ loop.index }}{{ w }}{% endfor %} {{ [3, 1, 2]|sort|join(',') }} "
        "{{ range(3)|list }} {{ 2 ** 10 }} {{ 'ab' * 2 }} {{ 'x' ~ ack_code }} {{ contact.name|replace('desk', 'Desk') }}"
    )
    assert render_template_text(source, CTX) == (
        "NATIONAAL CRISISCENTRUM 1-2 3 4 1a2b 1,2,3 [0, 1, 2] 1024 abab x4821 Duty Desk"
    )


def test_rendering_at_send_time_has_the_same_bounds_and_names_template_language_and_field() -> None:
    # A spec built without the loader (as a stored revision is read at send time), so its
    # templates were never checked: the bound must hold at send time by itself.
    spec = parse_playbook(VALID, "drill.yaml").model_copy(deep=True)
    text = spec.templates["invite"]["en"].model_copy(update={"body": NESTED_RANGES})
    spec.templates["invite"]["en"] = text
    start = time.monotonic()
    with pytest.raises(TemplateError) as err:
        render_message(spec, "invite", "en", CTX)
    assert time.monotonic() - start < 0.5
    assert (err.value.template, err.value.language, err.value.field) == ("invite", "en", "body")
    assert str(err.value) == ("template 'invite' (en) of playbook 'drill': body: template exceeds a render limit: "
                              "range() of 100,000 numbers was asked for; the limit is 10,000; simplify it")
    assert isinstance(err.value.__cause__, RenderLimitExceeded)


def test_any_failure_at_send_time_is_a_template_error_with_its_line() -> None:
    spec = parse_playbook(VALID, "drill.yaml").model_copy(deep=True)
    spec.templates["invite"]["en"] = spec.templates["invite"]["en"].model_copy(
        update={"body": "line one\n{{ deadline_minutes + 'x' }}"})
    with pytest.raises(TemplateError) as err:
        render_message(spec, "invite", "en", CTX)
    assert err.value.line == 2
    assert err.value.reason.startswith("template cannot be rendered: TypeError: unsupported operand")


def test_the_loader_reports_a_render_limit_at_the_template() -> None:
    from commtest.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as err:
        parse_playbook(playbook_with_template(NESTED_RANGES), "drill.yaml")
    assert [str(p) for p in err.value.problems] == [
        "drill.yaml:21:13: templates.invite.en.body: template exceeds a render limit: "
        "range() of 100,000 numbers was asked for; the limit is 10,000; simplify it"
    ]
