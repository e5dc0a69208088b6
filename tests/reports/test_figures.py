"""Report figures from hand-built event logs with known answers (SQLite and PostgreSQL).

The unit is the check (commtest.facts): one contact point on one channel in one run. Its
response time runs from its first attempt's first contact; attempts never sent never count.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from commtest import events as ev
from commtest.clock import UTC, FrozenClock
from reports.monthly import generate_monthly, monthly_view
from reports.monthly_figures import BadMonth, compute_monthly_figures
from reports.render import render_html, tables
from reports.test_report import build_test_report
from tests.reports.builder import PLAYBOOK, LogBuilder

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def log(engine):  # type: ignore[no-untyped-def]
    return LogBuilder(engine).directory()


def _ten_desks(log: LogBuilder) -> int:
    """BE-NCCN: ten e-mail desks answering after 10..100 s (in a shuffled order), NL-NCC three
    desks after 5, 1 and 9 s; NL-NCC's phone goes to voicemail; BE-NCCN's phone bounces."""
    run = log.run(T0)
    for i, seconds in enumerate([70, 10, 100, 40, 20, 90, 30, 60, 50, 80]):
        desk = log.contact("BE-NCCN", f"d{i}", [("email", f"d{i}@nccn.example")])
        log.ping(run, "BE-NCCN", "email", sent_at=T0 + timedelta(minutes=i), response_s=seconds, contact=desk)
    for i, seconds in enumerate([5, 1, 9]):
        desk = log.contact("NL-NCC", f"d{i}", [("email", f"d{i}@ncc.example")])
        log.ping(run, "NL-NCC", "email", sent_at=T0, response_s=seconds, contact=desk)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="voicemail")
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, outcome="bounced", delivered_after_s=None)
    return log.close(run)


def test_median_and_p90_are_nearest_rank_over_checks_per_organisation_and_channel(log: LogBuilder) -> None:
    _ten_desks(log)
    figures = compute_monthly_figures(log.engine, "2026-03")
    stats = {(s.organisation, s.channel): s for s in figures.per_org_channel}
    be = stats[("BE-NCCN", "email")]
    # The clock of each check starts at its first contact (delivery, 1 s after sending).
    assert (be.checks, be.answered, be.median_ms, be.p90_ms) == (10, 10, 49_000, 89_000)
    nl = stats[("NL-NCC", "email")]
    assert (nl.median_ms, nl.p90_ms) == (4_000, 8_000)  # ranks ceil(3/2)=2 and ceil(2.7)=3 of [0, 4, 8]
    # 13 answered of 15 counted checks (the voicemail and the bounce count, as failures).
    assert figures.totals.checks == 15 and figures.totals.answered == 13
    assert figures.totals.ack_rate == round(13 / 15, 6)
    assert (figures.totals.median_ms, figures.totals.p90_ms) == (39_000, 89_000)


def test_a_retry_that_was_never_sent_does_not_count_and_a_check_is_counted_once(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "LU-CNC", "email", sent_at=T0, outcome="delivered_no_ack", attempt=1)
    log.ping(run, "LU-CNC", "email", sent_at=T0 + timedelta(minutes=20), attempt=2, sent=False)  # cancelled
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=60)
    log.close(run)
    report = build_test_report(log.engine, run)
    [lu] = [c for c in report.checks if c.organisation == "LU-CNC"]
    assert (lu.status, lu.attempts_sent, lu.attempts_planned, lu.outcome) == ("fail", 1, 2, "delivered_no_ack")
    month = compute_monthly_figures(log.engine, "2026-03")
    lu_stats = next(s for s in month.per_org_channel if s.organisation == "LU-CNC")
    assert (lu_stats.checks, lu_stats.answered, lu_stats.ack_rate) == (1, 0, 0.0)  # not "2 pings, 50 %"
    assert (month.totals.checks, month.totals.answered) == (2, 1)


def test_the_response_time_runs_from_the_first_attempts_first_contact(log: LogBuilder) -> None:
    run = log.run(T0)
    # The first call rings 5 s after it was placed and goes to voicemail; the retry, placed
    # 3 min later, rings at once and is answered 29 s after it was placed.
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="voicemail", delivered_status="ringing", delivered_after_s=5)
    log.ping(run, "NL-NCC", "voice", sent_at=T0 + timedelta(minutes=3), response_s=29, attempt=2,
             delivered_status="ringing", delivered_after_s=0)
    log.close(run)
    [check] = [c for c in build_test_report(log.engine, run).checks if c.channel == "voice"]
    assert check.response_ms == (3 * 60 + 29 - 5) * 1000  # 3 min 24 s, not 29 s
    assert check.first_contact_at == T0 + timedelta(seconds=5) and check.attempts_sent == 2
    assert check.status == "pass"  # within the 5-minute target


def _two_desks_one_late(log: LogBuilder, answer: str) -> int:
    log.playbook(PLAYBOOK.replace("owner: BENELUX-SG", f"owner: BENELUX-SG\nanswer: {answer}"))
    desk = log.contact("BE-NCCN", "night", [("email", "night@nccn.example")])
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=60)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, outcome="delivered_no_ack", contact=desk)
    return log.close(run)


@pytest.mark.parametrize("answer, verdict", [("any", "pass"), ("all", "fail")])
def test_the_verdict_follows_the_playbooks_answer_rule(log: LogBuilder, answer: str, verdict: str) -> None:
    run = _two_desks_one_late(log, answer)
    verdicts = {(m.organisation, m.channel): m for m in build_test_report(log.engine, run).matrix}
    cell = verdicts[("BE-NCCN", "email")]
    assert (cell.verdict, cell.answer, cell.checks, cell.answered) == (verdict, answer, 2, 1)


def test_verdicts_pass_fail_and_no_endpoint_for_an_organisation_without_a_phone(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=600)  # target 15 min
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, response_s=20)
    log.ping(run, "NL-NCC", "email", sent_at=T0, response_s=1200)  # over the target
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="voicemail")
    log.ping(run, "LU-CNC", "email", sent_at=T0, outcome="delivered_no_ack", attempt=1)
    log.ping(run, "LU-CNC", "email", sent_at=T0 + timedelta(minutes=5), response_s=60, attempt=2)
    log.close(run)
    verdicts = {(v.organisation, v.channel): v.verdict for v in build_test_report(log.engine, run).matrix}
    assert verdicts == {
        ("BE-NCCN", "email"): "pass",
        ("BE-NCCN", "voice"): "pass",
        ("NL-NCC", "email"): "fail",
        ("NL-NCC", "voice"): "fail",
        ("LU-CNC", "email"): "pass",  # answered 5 min 59 s after the first attempt's delivery: within 15 min
        ("LU-CNC", "voice"): "no_endpoint",  # LU-CNC has no phone in the directory
    }
    breaches = {(b.organisation, b.channel, b.verdict) for b in compute_monthly_figures(log.engine, "2026-03").breaches}
    assert breaches == {("NL-NCC", "email", "fail"), ("NL-NCC", "voice", "fail"), ("LU-CNC", "voice", "no_endpoint")}


def test_simulated_checks_are_counted_apart_and_marked_in_the_reports(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=30, simulated=True)
    log.ping(run, "NL-NCC", "email", sent_at=T0, response_s=40)
    log.close(run)
    report = build_test_report(log.engine, run)
    assert report.simulated and report.summary.simulated == 1
    assert {c.organisation: c.simulated for c in report.checks} == {"BE-NCCN": True, "NL-NCC": False}
    html = render_html(report, "en")
    assert "SIMULATED — not evidence" in html and html.count(">SIMULATED<") >= 1
    month = compute_monthly_figures(log.engine, "2026-03")
    assert (month.totals.checks, month.totals.answered) == (1, 1)  # only the real one
    assert (month.simulated.checks, month.simulated.runs) == (1, 1)
    row = generate_monthly(log.engine, "2026-03", FrozenClock(datetime(2026, 4, 2, tzinfo=UTC)))
    assert "SIMULATED — not evidence" in render_html(monthly_view(row), "en")


def test_a_run_across_the_dst_change_shows_local_times_in_their_own_offset(log: LogBuilder) -> None:
    # Brussels moves from +01:00 to +02:00 at 01:00 UTC on 29 March 2026.
    start = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)
    run = log.run(start)
    log.ping(run, "BE-NCCN", "email", sent_at=start, response_s=3600)
    log.close(run)
    html = render_html(build_test_report(log.engine, run), "en")
    assert "29 Mar 2026 01:30:00 CET" in html  # planned, winter time
    assert "03:30:00" in html  # answered an hour later, summer time (a 24-hour clock, never "AM")
    assert " AM" not in html and " PM" not in html


def test_a_run_is_counted_in_the_local_month_it_fired_in(log: LogBuilder) -> None:
    # 31 March 22:30 UTC is 1 April 00:30 in Brussels.
    fire = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)
    run = log.run(fire)
    log.ping(run, "BE-NCCN", "email", sent_at=fire, response_s=30)
    log.close(run)
    assert compute_monthly_figures(log.engine, "2026-03").runs == []
    april = compute_monthly_figures(log.engine, "2026-04")
    assert [r.id for r in april.runs] == [run] and april.trend[-2].month == "2026-03"


def test_a_month_with_no_runs_says_so_and_shows_no_table_with_headers_only(log: LogBuilder) -> None:
    _ten_desks(log)
    figures = compute_monthly_figures(log.engine, "2026-05")
    assert figures.runs == [] and figures.totals.checks == 0 and figures.totals.ack_rate is None
    assert figures.totals.median_ms is None and figures.breaches == []
    assert [p.month for p in figures.trend][-3:] == ["2026-03", "2026-04", "2026-05"]
    assert figures.trend[-3].checks == 15  # March is still in the 12-month trend
    row = generate_monthly(log.engine, "2026-05", FrozenClock(datetime(2026, 6, 1, tzinfo=UTC)))
    html = render_html(monthly_view(row), "en")
    assert "No test ran in this month." in html and "<svg" in html
    for table in re.findall(r"<table.*?</table>", html, re.S):
        assert table.count("<tr") > 1, "a table with headers only"


def test_action_points_name_every_failed_check_bounce_scanner_and_gap_with_what_to_do(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=3, suspicious=True)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="bounced",
             extra=[(ev.PING_RETRY, {"next_attempt": 2, "reason": "busy"})])
    log.ping(run, "NL-NCC", "email", sent_at=T0, outcome="delivered_no_ack")
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, outcome="voicemail")
    log.event(T0 + timedelta(minutes=1), ev.ENDPOINT_STATUS, run_id=run,
              endpoint_id=log.endpoints[("NL-NCC", "voice")], status="suspect", reason="bounced")
    log.event(T0 + timedelta(minutes=1), ev.ENDPOINT_VERIFIED, run_id=run, endpoint_id=log.endpoints[("BE-NCCN", "email")])
    log.event(T0, ev.RUN_GAP, run_id=run, organisation_code="LU-CNC", channel="voice", contact_point="LU-CNC/crisis-desk",
              field="crisis-desk", reason="no active voice endpoint")
    log.close(run)
    report = build_test_report(log.engine, run)
    points = {(a.kind, a.organisation, a.channel) for a in report.action_points}
    assert points == {
        ("failed_check", "NL-NCC", "email"), ("fix_endpoint", "NL-NCC", "voice"), ("voicemail", "BE-NCCN", "voice"),
        ("possible_scanner", "BE-NCCN", "email"), ("no_contact_point", "LU-CNC", "voice"),
    }
    assert {(c.address, c.change) for c in report.directory_changes} == {
        ("+447700900102", "status:suspect"), ("desk@nccn.example", "verified")}
    html = render_html(report, "en")
    assert "None." not in html and "ask the centre for the right one" in html
    month = compute_monthly_figures(log.engine, "2026-03")
    assert {(a.kind, a.organisation, a.address) for a in month.action_points} >= {
        ("fix_endpoint", "NL-NCC", "+447700900102"), ("failed_check", "NL-NCC", "desk@ncc.example")}
    assert (month.freshness.endpoints, month.freshness.fresh) == (5, 1)


def test_an_endpoint_that_failed_twice_in_a_row_is_a_repeated_failure(log: LogBuilder) -> None:
    for day in (1, 15):
        run = log.run(T0.replace(day=day))
        log.ping(run, "NL-NCC", "email", sent_at=T0.replace(day=day), outcome="delivered_no_ack")
        log.close(run)
    month = compute_monthly_figures(log.engine, "2026-03")
    [point] = [a for a in month.action_points if a.organisation == "NL-NCC"]
    assert (point.kind, point.failures) == ("repeated_failure", 2)
    second = max(r.id for r in month.runs)
    assert any(a.kind == "failed_before" for a in build_test_report(log.engine, second).action_points)


def test_an_endpoint_flag_is_closed_once_a_later_run_proves_the_endpoint(log: LogBuilder) -> None:
    run = log.run(T0)
    log.event(T0, ev.ENDPOINT_STATUS, run_id=run, endpoint_id=log.endpoints[("NL-NCC", "voice")], status="suspect")
    log.close(run)
    log.event(T0 + timedelta(days=3), ev.ENDPOINT_VERIFIED, endpoint_id=log.endpoints[("NL-NCC", "voice")])
    assert [a for a in compute_monthly_figures(log.engine, "2026-03").action_points if a.channel == "voice"] == []


def test_every_csv_table_has_a_header_and_the_rows_of_its_checks(log: LogBuilder) -> None:
    run = _ten_desks(log)
    report_tables = tables(build_test_report(log.engine, run))
    header, rows = report_tables["matrix"]
    assert header[:3] == ["organisation", "channel", "verdict"] and len(rows) == 6
    assert len(report_tables["checks"][1]) == 15 and len(report_tables["attempts"][1]) == 15


def test_a_malformed_month_is_refused_with_the_expected_form(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadMonth, match=r"month '2026-13': expected YYYY-MM"):
        compute_monthly_figures(engine, "2026-13")


# Words that must never reach a French, German or Dutch reader: statuses, channel and step ids,
# methods, outcomes, details as they are stored, and the English of the shipped playbook.
ENGLISH = ("completed", "manual", "email", "voice", "sms", "video", "cap", "keypress", "link", "delivered", "ringing",
           "acked", "voicemail", "next_attempt", "reason=", "pass", "fail", "Action points", "None.", "No data",
           "Channel", "Response time", "Outcome", " AM", " PM", "sandbox duty officer", "communication test",
           "Communication test", "crisis", "Crisis", "step", "Step", "attempt", "to step")


def _words_a_reader_sees(html: str) -> str:
    text = re.sub(r"<style.*?</style>|<[^>]+>", " ", html, flags=re.S)
    # Identifiers and addresses, not words: e-mail addresses, video room URLs, playbook ids.
    return re.sub(r"\S+@\S+|https?://\S+|BENELUX-SG|benelux-quarterly|benelux-nrw-crisis-centres|sha256 \w+", " ", text)


@pytest.mark.parametrize("lang", ["fr", "de", "nl"])
def test_a_report_of_the_shipped_playbook_in_french_german_or_dutch_has_no_english_word_left(
        engine, clock: FrozenClock, lang: str) -> None:  # type: ignore[no-untyped-def]
    from reports.directory_report import publish_directory
    from tests.reports.shipped import run_the_shipped_playbook

    run = run_the_shipped_playbook(engine, clock)  # e-mail, voice, SMS after the calls, video: steps email, voice...
    report = build_test_report(engine, run, clock=clock)
    assert {"retry planned", "escalated"} <= {e.kind.replace("ping.retry", "retry planned").replace(
        "ping.escalated", "escalated") for e in report.timeline}
    month = monthly_view(generate_monthly(engine, "2026-04", FrozenClock(datetime(2026, 5, 2, tzinfo=UTC))))
    directory = publish_directory(engine, clock)
    for html in (render_html(report, lang), render_html(month, lang), render_html(directory, lang)):
        text = _words_a_reader_sees(html)
        found = [w for w in ENGLISH if re.search(rf"(?<![\w-]){re.escape(w)}(?![\w-])", text)]
        assert found == [], f"{lang}: {found}"


@pytest.mark.parametrize("lang, sentence", [
    ("fr", "1 organisation sur 4 a réussi sur tous les canaux."),
    ("de", "1 von 4 Organisationen hat auf allen Kanälen bestanden."),
    ("nl", "1 van de 4 organisaties is op elk kanaal geslaagd."),
    ("en", "1 of 4 organisations passed on every channel."),
])
def test_the_summary_of_the_shipped_playbooks_run_agrees_with_its_numbers(
        engine, clock: FrozenClock, lang: str, sentence: str) -> None:  # type: ignore[no-untyped-def]
    from tests.reports.shipped import run_the_shipped_playbook

    report = build_test_report(engine, run_the_shipped_playbook(engine, clock), clock=clock)
    html = render_html(report, lang)
    assert sentence in html
    title = {"fr": "Test de communication des centres de crise du Benelux",
             "de": "Kommunikationstest der Krisenzentren", "nl": "Communicatietest van de crisiscentra",
             "en": "Benelux–NRW crisis centres communication test"}[lang]
    assert "<h1>" in html and title in html.split("<h1>", 1)[1].split("</h1>", 1)[0]


def test_the_report_speaks_the_language_asked_for_with_its_grammar(log: LogBuilder) -> None:
    run = log.run(T0)
    log.ping(run, "LU-CNC", "email", sent_at=T0, response_s=30)
    log.close(run)
    report = build_test_report(log.engine, run)
    assert "Samenvatting" in render_html(report, "nl") and "geslaagd" in render_html(report, "nl")
    assert "de Centre national de crise" not in render_html(report, "fr")
    assert "Zusammenfassung" in render_html(report, "de")
    log.prove_all(T0)  # nothing open: no endpoint waits to be proven either
    month = monthly_view(generate_monthly(log.engine, "2026-03", FrozenClock(datetime(2026, 4, 2, tzinfo=UTC))))
    assert "Aucun point d'action" in render_html(month, "fr").replace("’", "'")
