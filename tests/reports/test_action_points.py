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


# ------------------------------------------------------------------------- monthly report

JAN = datetime(2026, 1, 13, 9, 0, tzinfo=UTC)
FEB = datetime(2026, 2, 10, 9, 0, tzinfo=UTC)
APRIL = FrozenClock(datetime(2026, 4, 2, tzinfo=UTC))


def proven(log: LogBuilder, key: tuple[str, str], at: datetime) -> None:
    """The directory records that this endpoint was proven reachable at ``at`` (an import)."""
    from commtest.db import session_scope
    from commtest.models import Endpoint

    with session_scope(log.engine) as s:
        endpoint = s.get(Endpoint, log.endpoints[key])
        assert endpoint is not None
        endpoint.verified_at = at
        s.add(endpoint)


def monthly_html(log: LogBuilder, month: str, lang: str = "en") -> str:
    from reports.monthly import generate_monthly, monthly_view

    return render_html(monthly_view(generate_monthly(log.engine, month, APRIL)), lang)


def test_the_monthly_report_lists_scanner_answers_failures_on_our_side_and_endpoints_not_proven_for_too_long(
        log: LogBuilder) -> None:
    from commtest import events as ev
    from reports.monthly_figures import compute_monthly_figures

    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=3, suspicious=True)
    log.ping(run, "NL-NCC", "email", sent_at=T0, response_s=60)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, sent=False, outcome="provider_failure", reason="HTTP 503")
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, sent=False, outcome="template_error", reason=TEMPLATE_FAILURE)
    log.event(T0 + timedelta(minutes=2), ev.ENDPOINT_VERIFIED, run_id=run, endpoint_id=log.endpoints[("NL-NCC", "email")])
    log.close(run)
    proven(log, ("LU-CNC", "email"), datetime(2025, 6, 1, tzinfo=UTC))  # more than 180 days before April
    proven(log, ("NL-NCC", "voice"), datetime(2026, 2, 1, tzinfo=UTC))  # recent enough

    figures = compute_monthly_figures(log.engine, "2026-03", stale_after_days=180)
    points = {(a.kind, a.organisation, a.channel): a for a in figures.action_points}
    assert set(points) == {("possible_scanner", "BE-NCCN", "email"), ("not_tested", "NL-NCC", "voice"),
                           ("fix_template", "BE-NCCN", "voice")}
    fix = points[("fix_template", "BE-NCCN", "voice")]
    assert (fix.contact_point, fix.step, fix.template) == ("BE-NCCN duty desk", "call", "ping")
    assert "'contact' has no attribute 'phone'" in fix.detail and "desk@nccn.example" not in fix.detail
    stale = {(a.kind, a.organisation, a.channel, a.address, a.since) for a in figures.stale_endpoints}
    assert stale == {
        ("stale_endpoint", "LU-CNC", "email", "desk@cnc.example", datetime(2025, 6, 1, tzinfo=UTC)),
        ("stale_endpoint", "BE-NCCN", "email", "desk@nccn.example", None),  # never proven
        ("stale_endpoint", "BE-NCCN", "voice", "+447700900101", None),
    }  # NL-NCC's e-mail was proven by the run, its phone in February: neither is stale

    html = monthly_html(log, "2026-03")
    text = " ".join(text_of(html).split())
    assert "possibly a mail security scanner" in text and "Fix the template in the playbook" in text
    assert "our side failed" in text and "Not proven reachable since 1 Jun 2025" in text
    assert "Never proven reachable" in text and "6 action points are open." in text


def test_the_monthly_report_carries_over_what_is_still_open_from_earlier_months(log: LogBuilder) -> None:
    from commtest import events as ev
    from reports.monthly_figures import compute_monthly_figures

    run = log.run(JAN)
    log.ping(run, "NL-NCC", "email", sent_at=JAN, outcome="delivered_no_ack")  # failed, not passed since: open
    log.ping(run, "BE-NCCN", "email", sent_at=JAN, outcome="delivered_no_ack")  # failed, passed in February: closed
    log.ping(run, "LU-CNC", "email", sent_at=JAN, response_s=2, suspicious=True)  # no person answered since: open
    log.ping(run, "NL-NCC", "voice", sent_at=JAN, sent=False, outcome="provider_failure", reason="HTTP 503")  # open
    log.ping(run, "BE-NCCN", "voice", sent_at=JAN, sent=False, outcome="template_error", reason=TEMPLATE_FAILURE)
    log.event(JAN, ev.RUN_GAP, run_id=run, organisation_code="LU-CNC", channel="voice",
              contact_point="LU-CNC/crisis-desk", field="crisis-desk", reason="no active voice endpoint")
    log.close(run)
    february = log.run(FEB)
    log.ping(february, "BE-NCCN", "email", sent_at=FEB, response_s=60)
    log.ping(february, "BE-NCCN", "voice", sent_at=FEB, response_s=30)  # the template was fixed
    log.close(february)

    figures = compute_monthly_figures(log.engine, "2026-03")  # no test in March at all
    points = {(a.kind, a.organisation, a.channel): a for a in figures.action_points}
    assert set(points) == {("failed_check", "NL-NCC", "email"), ("possible_scanner", "LU-CNC", "email"),
                           ("not_tested", "NL-NCC", "voice"), ("no_contact_point", "LU-CNC", "voice")}
    assert all(a.from_earlier_month and a.since is not None and a.since.date() == JAN.date()
               for a in points.values())
    text = " ".join(text_of(monthly_html(log, "2026-03")).split())
    assert text.count("still open") == 4

    # February's report still lists January's failure of NL-NCC, but not BE-NCCN's: it passed that month.
    february_points = {(a.kind, a.organisation, a.channel) for a in compute_monthly_figures(log.engine, "2026-02").action_points}
    assert ("failed_check", "NL-NCC", "email") in february_points
    assert not any(org == "BE-NCCN" for _, org, _ in february_points)


def test_a_failure_from_an_earlier_month_closes_once_the_contact_point_passes_again(log: LogBuilder) -> None:
    from reports.monthly_figures import compute_monthly_figures

    run = log.run(JAN)
    log.ping(run, "NL-NCC", "email", sent_at=JAN, outcome="delivered_no_ack")
    log.close(run)
    later = log.run(FEB)
    log.ping(later, "NL-NCC", "email", sent_at=FEB, outcome="bounced", delivered_after_s=None)  # failed again
    log.close(later)
    [point] = [a for a in compute_monthly_figures(log.engine, "2026-03").action_points if a.channel == "email"]
    # Open since the first failure of the streak, two failures in a row; the last one bounced.
    assert (point.kind, point.from_earlier_month, point.failures) == ("fix_endpoint", True, 2)
    assert point.since is not None and point.since.date() == JAN.date()
    again = log.run(T0)
    log.ping(again, "NL-NCC", "email", sent_at=T0, response_s=40)
    log.close(again)
    assert [a for a in compute_monthly_figures(log.engine, "2026-04").action_points if a.channel == "email"] == []


def test_an_endpoint_not_proven_for_longer_than_the_setting_is_an_action_point_of_the_test_report(
        log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=30)
    log.close(run)
    proven(log, ("BE-NCCN", "email"), T0 - timedelta(days=30))  # recent: fine
    proven(log, ("NL-NCC", "email"), datetime(2025, 6, 1, tzinfo=UTC))  # 282 days before the report
    proven(log, ("NL-NCC", "voice"), T0 - timedelta(days=10))
    proven(log, ("LU-CNC", "email"), T0 - timedelta(days=10))
    report = build_test_report(log.engine, run, clock=FrozenClock(T0 + timedelta(days=1)), stale_after_days=180)
    stale = {(a.kind, a.organisation, a.channel, a.address, a.detail) for a in report.directory_state.action_points}
    assert stale == {
        ("stale_endpoint", "NL-NCC", "email", "desk@ncc.example", "2025-06-01T00:00:00+00:00"),
        ("stale_endpoint", "BE-NCCN", "voice", "+447700900101", ""),  # never proven
    }
    assert all(a.field == "crisis-desk" and a.contact_point for a in report.directory_state.action_points)
    rows = action_rows(render_html(report, "en"))
    [nl] = [r for r in rows if "desk@ncc.example" in r]
    assert nl.startswith("Nationaal CrisisCentrum Crisis desk E-mail NL-NCC duty desk desk@ncc.example")
    assert nl.endswith("Not proven reachable since 1 Jun 2025: include it in the next test or confirm it with the "
                       "centre.")
    [be] = [r for r in rows if "+447700900101" in r]
    assert be.endswith("Never proven reachable: include it in the next test or confirm it with the centre.")
    # A longer setting: nothing is stale any more but the endpoint never proven.
    longer = build_test_report(log.engine, run, clock=FrozenClock(T0 + timedelta(days=1)), stale_after_days=400)
    assert {a.address for a in longer.directory_state.action_points} == {"+447700900101"}
