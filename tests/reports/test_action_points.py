"""Action points follow from the facts and say what to do (issue 8, "Reports that say what
matters first"): in the test report of one run, and in the monthly report with those still
open from earlier months."""
from __future__ import annotations

import html as htmllib
import re
from datetime import datetime, timedelta

import pytest

from commtest.clock import UTC, FrozenClock
from reports.render import render_html
from reports.test_report import build_test_report
from tests.reports.builder import LogBuilder

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)

TEMPLATE_FAILURE = (
    "the message could not be prepared for this contact point: TemplateError: template 'ping' (nl) of playbook "
    "'benelux-quarterly': body: template uses an undefined variable: 'contact' has no attribute 'phone' "
    "(copy to desk@nccn.example, +32 2 555 01 10)"
)


@pytest.fixture
def log(engine):  # type: ignore[no-untyped-def]
    return LogBuilder(engine).directory()


def text_of(html: str) -> str:
    return htmllib.unescape(re.sub(r"<style.*?</style>|<[^>]+>", " ", html, flags=re.S))


def action_rows(html: str) -> list[str]:
    section = html.split("<h2>", 3)[2]  # the second heading: the action points
    return [" ".join(text_of(row).split()) for row in re.findall(r"<tr>.*?</tr>", section, re.S)[1:]]


# ------------------------------------------------------------------------- test report


def test_a_message_that_could_not_be_prepared_names_the_template_its_error_and_says_to_fix_the_playbook(
        log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, response_s=30)
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, sent=False, outcome="template_error", reason=TEMPLATE_FAILURE)
    log.close(run)
    report = build_test_report(log.engine, run)
    [point] = [a for a in report.action_points if a.organisation == "BE-NCCN"]
    assert (point.kind, point.field, point.channel, point.contact_point) == (
        "fix_template", "crisis-desk", "voice", "BE-NCCN duty desk")
    assert (point.step, point.template) == ("call", "ping")
    assert "'contact' has no attribute 'phone'" in point.detail
    assert "desk@nccn.example" not in point.detail and "555 01 10" not in point.detail  # masked as in the log
    assert "d***@nccn.example" in point.detail and "+32*****110" in point.detail

    [row] = [r for r in action_rows(render_html(report, "en")) if "'phone'" in r]
    assert row.startswith("Nationaal Crisiscentrum / Centre de Crise National Crisis desk Telephone BE-NCCN duty desk")
    assert "template ping" in row and "Telephone step" in row and "'contact' has no attribute 'phone'" in row
    assert "Fix the template in the playbook" in row
    assert "provider" not in row  # not "look at the provider's settings"
    [row_fr] = [r for r in action_rows(render_html(report, "fr")) if "'phone'" in r]
    assert "Corrigez ce modèle dans le scénario" in row_fr and "fournisseur" not in row_fr


def test_an_attempt_our_provider_failed_still_points_at_the_provider(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, sent=False, outcome="provider_failure",
             reason="HTTP 503 from the provider")
    log.close(run)
    [point] = build_test_report(log.engine, run).action_points
    assert (point.kind, point.outcome) == ("not_tested", "provider_failure")
