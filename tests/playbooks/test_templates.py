"""Rendering messages: sandbox, strict variables, escaping and language fallback."""
from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

from playbooks.loader import parse_playbook
from playbooks.templates import (
    TEMPLATE_VARIABLES,
    TemplateError,
    format_deadline,
    pick_language,
    render_message,
    sample_context,
    template_language,
)
from tests.playbooks.conftest import VALID

MULTI = VALID.replace(
    "  call:\n",
    '    nl:\n      subject: "Test door {{ sender }}"\n      body: "Hallo {{ organisation.name }}"\n'
    '      html: "<p>Hallo {{ organisation.name }}</p>"\n  call:\n',
)


def test_the_template_variables_are_exactly_the_documented_ones() -> None:
    assert TEMPLATE_VARIABLES == (
        "organisation", "contact", "playbook", "run", "channel", "language", "ack_url", "ack_code",
        "deadline", "deadline_minutes", "test_kind", "sender", "test_at",
    )


def test_a_message_is_rendered_in_the_requested_language() -> None:
    spec = parse_playbook(MULTI, "drill.yaml")
    message = render_message(spec, "invite", "nl", sample_context("nl"))
    assert message.language == "nl"
    assert message.subject == "Test door Benelux General Secretariat"
    assert message.body == "Hallo Nationaal Crisiscentrum"


def test_a_regional_language_falls_back_to_its_base_language() -> None:
    spec = parse_playbook(MULTI, "drill.yaml")
    assert render_message(spec, "invite", "nl-BE", sample_context("nl")).language == "nl"


def test_an_unknown_language_falls_back_to_the_default_language() -> None:
    spec = parse_playbook(MULTI, "drill.yaml")
    message = render_message(spec, "invite", "it", sample_context("en"))
    assert message.language == "en"
    assert message.body == (
        "Hello Nationaal Crisiscentrum,\nplease confirm: https://commtest.example/ack/SAMPLE-TOKEN"
    )
    assert template_language(spec, "invite", "it") == "en"


def test_pick_language_ignores_case_and_underscores() -> None:
    assert pick_language(["nl", "fr"], "FR_be", "nl") == "fr"


def test_text_is_not_escaped_but_html_is() -> None:
    spec = parse_playbook(MULTI, "drill.yaml")
    context = replace(sample_context("nl"), organisation=replace(sample_context("nl").organisation, name="A & <B>"))
    message = render_message(spec, "invite", "nl", context)
    assert message.body == "Hallo A & <B>"
    assert message.html == "<p>Hallo A &amp; &lt;B&gt;</p>"


def test_a_template_cannot_reach_python_internals() -> None:
    text = VALID.replace("{{ ack_url }}", "{{ organisation.__class__.__mro__ }}")
    from commtest.errors import ValidationFailed

    with pytest.raises(ValidationFailed) as failed:
        parse_playbook(text, "drill.yaml")
    assert "templates.invite.en.body: template" in str(failed.value)


def test_an_unknown_template_name_is_a_template_error() -> None:
    spec = parse_playbook(VALID, "drill.yaml")
    with pytest.raises(TemplateError, match="playbook 'drill' has no template 'nope'"):
        render_message(spec, "nope", "en", sample_context("en"))


def test_the_deadline_is_local_time_formatted_for_the_language() -> None:
    at = datetime(2026, 4, 14, 8, 15, tzinfo=timezone.utc)
    assert format_deadline(at, "Europe/Brussels", "nl") == "14 apr 2026, 10:15 CEST"
    assert format_deadline(at, "Europe/Brussels", "de") == "14.04.2026, 10:15 CEST"
    # English readers are European: day-month-year and a 24-hour clock, as in the reports; an
    # unknown language falls back to that English.
    assert format_deadline(at, "Europe/Luxembourg", "en") == "14 Apr 2026, 10:15 CEST"
    assert format_deadline(at, "Europe/Luxembourg", "xx") == "14 Apr 2026, 10:15 CEST"
