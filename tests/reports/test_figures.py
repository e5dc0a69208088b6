"""Report numbers from hand-built event logs with known answers (SQLite and PostgreSQL)."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from commtest import events as ev
from commtest.clock import UTC, FrozenClock
from reports.i18n import LANGUAGES, labels
from reports.monthly import generate_monthly, monthly_view
from reports.monthly_figures import BadMonth, compute_monthly_figures
from reports.render import render_html, tables
from reports.test_report import build_test_report
from tests.reports.builder import LogBuilder

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def log(engine):  # type: ignore[no-untyped-def]
    return LogBuilder(engine).directory()


def _known_month(log: LogBuilder) -> int:
    """BE-NCCN email: 10 attempts acknowledged after 10..100 s; NL-NCC email: 3 after 5, 1, 9 s."""
    run = log.run(T0)
    for attempt, seconds in enumerate([70, 10, 100, 40, 20, 90, 30, 60, 50, 80], start=1):
        log.ping(run, "BE-NCCN", "email", sent_at=T0 + timedelta(minutes=attempt), response_s=seconds, attempt=attempt)
    for attempt, seconds in enumerate([5, 1, 9], start=1):
        log.ping(run, "NL-NCC", "email", sent_at=T0, response_s=seconds, attempt=attempt)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="voicemail")
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, outcome="bounced")
    return run


def test_median_and_p90_are_nearest_rank_per_organisation_and_channel(log: LogBuilder) -> None:
    _known_month(log)
    figures = compute_monthly_figures(log.engine, "2026-03")
    stats = {(s.organisation, s.channel): s for s in figures.per_org_channel}
    be = stats[("BE-NCCN", "email")]
    assert (be.pings, be.acknowledged, be.median_ms, be.p90_ms) == (10, 10, 50_000, 90_000)
    nl = stats[("NL-NCC", "email")]
    assert (nl.median_ms, nl.p90_ms) == (5_000, 9_000)  # ranks ceil(3/2)=2 and ceil(2.7)=3 of [1, 5, 9]
    # All 13 acknowledged: [1 5 9 10 20 30 40 50 60 70 80 90 100] -> ranks ceil(6.5)=7 and ceil(11.7)=12.
    assert (figures.totals.median_ms, figures.totals.p90_ms) == (40_000, 90_000)
    assert figures.totals.pings == 15 and figures.totals.acknowledged == 13
    assert figures.totals.ack_rate == round(13 / 15, 6)


def test_outcome_counts_take_the_last_settlement_of_each_ping(log: LogBuilder) -> None:
    run = _known_month(log)
    late = log.ping(run, "LU-CNC", "email", sent_at=T0, outcome="delivered_no_ack")
    # A late acknowledgement after expiry changes the outcome: the last ping.settled counts.
    log.event(T0 + timedelta(hours=2), ev.PING_SETTLED, run_id=run, ping_id=late, organisation_code="LU-CNC",
              channel="email", outcome="acked_late", response_ms=7_200_000)
    report = build_test_report(log.engine, run)
    assert report.outcome_counts == {"acked": 13, "acked_late": 1, "bounced": 1, "voicemail": 1}
    month = compute_monthly_figures(log.engine, "2026-03")
    assert month.outcome_counts == report.outcome_counts


def test_verdicts_pass_fail_and_no_endpoint_for_an_organisation_without_a_phone(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=600)  # target 15 min
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, response_s=20)
    log.ping(run, "NL-NCC", "email", sent_at=T0, response_s=1200)  # over the target
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="voicemail")
    log.ping(run, "LU-CNC", "email", sent_at=T0, outcome="delivered_no_ack", attempt=1)
    log.ping(run, "LU-CNC", "email", sent_at=T0 + timedelta(minutes=40), response_s=60, attempt=2)
    verdicts = {(v.organisation, v.channel): v.verdict for v in build_test_report(log.engine, run).verdicts}
    assert verdicts == {
        ("BE-NCCN", "email"): "pass",
        ("BE-NCCN", "voice"): "pass",
        ("NL-NCC", "email"): "fail",
        ("NL-NCC", "voice"): "fail",
        ("LU-CNC", "email"): "pass",  # its first acknowledged attempt (the 2nd) was within the target
        ("LU-CNC", "voice"): "no_endpoint",  # LU-CNC has no phone in the directory
    }
    breaches = {(b.organisation, b.channel, b.verdict) for b in compute_monthly_figures(log.engine, "2026-03").breaches}
    assert breaches == {("NL-NCC", "email", "fail"), ("NL-NCC", "voice", "fail"), ("LU-CNC", "voice", "no_endpoint")}


def test_a_run_across_the_dst_change_shows_local_times_with_their_offsets(log: LogBuilder) -> None:
    # Brussels moves from +01:00 to +02:00 at 01:00 UTC on 29 March 2026.
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    run = log.run(start)
    log.ping(run, "BE-NCCN", "email", sent_at=start, response_s=3600)
    html = render_html(build_test_report(log.engine, run), "en")
    assert "2026-03-29 01:30:00 +01:00" in html  # sent, winter time
    assert "2026-03-29 03:30:00 +02:00" in html  # acknowledged an hour later, summer time


def test_a_run_is_counted_in_the_local_month_it_fired_in(log: LogBuilder) -> None:
    # 31 March 22:30 UTC is 1 April 00:30 in Brussels.
    fire = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
    run = log.run(fire)
    log.ping(run, "BE-NCCN", "email", sent_at=fire, response_s=30)
    assert compute_monthly_figures(log.engine, "2026-03").runs == []
    april = compute_monthly_figures(log.engine, "2026-04")
    assert [r.id for r in april.runs] == [run] and april.trend[-2].month == "2026-03"


def test_a_month_with_no_runs_has_empty_figures_and_says_so(log: LogBuilder) -> None:
    _known_month(log)
    figures = compute_monthly_figures(log.engine, "2026-05")
    assert figures.runs == [] and figures.totals.pings == 0 and figures.totals.ack_rate is None
    assert figures.totals.median_ms is None and figures.breaches == []
    assert [p.month for p in figures.trend][-3:] == ["2026-03", "2026-04", "2026-05"]
    assert figures.trend[-3].pings == 15  # March is still in the 12-month trend
    row = generate_monthly(log.engine, "2026-05", FrozenClock(datetime(2026, 6, 1, tzinfo=UTC)))
    html = render_html(monthly_view(row), "en")
    assert "No test ran in this month." in html and "<svg" in html


def test_observations_action_points_and_directory_changes_of_a_run(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=3, suspicious=True)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="bounced",
             extra=[(ev.PING_RETRY, {"next_attempt": 2, "reason": "busy"})])
    log.event(T0 + timedelta(minutes=1), ev.ENDPOINT_STATUS, run_id=run,
              endpoint_id=log.endpoints[("NL-NCC", "voice")], status="suspect", reason="bounced")
    log.event(T0 + timedelta(minutes=1), ev.ENDPOINT_VERIFIED, run_id=run, endpoint_id=log.endpoints[("BE-NCCN", "email")])
    report = build_test_report(log.engine, run)
    assert {(o.kind, o.organisation) for o in report.observations} == {("suspicious", "BE-NCCN"), ("retry", "NL-NCC")}
    assert [(a.organisation, a.channel, a.reason) for a in report.action_points] == [("NL-NCC", "voice", "bounced")]
    assert {(c.address, c.change) for c in report.directory_changes} == {
        ("+447700900102", "status:suspect"),
        ("desk@nccn.example", "verified"),
    }
    month = compute_monthly_figures(log.engine, "2026-03")
    assert [(a.organisation, a.address) for a in month.action_points] == [("NL-NCC", "+447700900102")]
    assert (month.freshness.endpoints, month.freshness.fresh) == (5, 1)


def test_an_action_point_is_closed_once_a_later_run_proves_the_endpoint(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="bounced")
    log.event(T0 + timedelta(days=3), ev.ENDPOINT_VERIFIED, endpoint_id=log.endpoints[("NL-NCC", "voice")])
    assert compute_monthly_figures(log.engine, "2026-03").action_points == []


def test_every_csv_table_has_a_header_and_rows(log: LogBuilder) -> None:
    run = _known_month(log)
    report_tables = tables(build_test_report(log.engine, run))
    header, rows = report_tables["verdicts"]
    assert header[:3] == ["organisation", "channel", "verdict"] and len(rows) == 6
    assert len(report_tables["pings"][1]) == 15


def test_a_malformed_month_is_refused_with_the_expected_form(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadMonth, match=r"month '2026-13': expected YYYY-MM"):
        compute_monthly_figures(engine, "2026-13")


def test_every_language_has_every_label() -> None:
    keys = set(labels("en"))
    for lang in LANGUAGES:
        assert set(labels(lang)) == keys, lang


def test_the_report_speaks_the_language_asked_for(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=30)
    report = build_test_report(log.engine, run)
    assert "geslaagd" in render_html(report, "nl") and "Oordeel per organisatie en kanaal" in render_html(report, "nl")
    assert "réussi" in render_html(report, "fr") and "bestanden" in render_html(report, "de")
