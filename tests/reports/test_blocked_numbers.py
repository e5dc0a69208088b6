"""A number that replied STOP (endpoint status ``blocked``) in the test report's action points,
the monthly report and the directory edition, in the reader's language."""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from commtest import events as ev
from commtest.clock import UTC, FrozenClock
from commtest.db import session_scope
from commtest.models import Endpoint
from reports.directory_report import publish_directory
from reports.monthly_figures import compute_monthly_figures
from reports.render import render_html
from reports.test_report import build_test_report
from tests.reports.builder import ORGS, PLAYBOOK, LogBuilder

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
MOBILE = "+31612345678"
SMS_PLAYBOOK = PLAYBOOK.replace("targets:\n", "  - id: text\n    channel: sms\n    template: ping\n"
                                "    ack_deadline: 10m\ntargets:\n  sms: 10m\n", 1)
ADVICE = {"en": "The number blocked our SMS (it replied STOP): ask the centre to send START from it, or to give "
                "another number.",
          "nl": "Het nummer blokkeert onze sms (het antwoordde STOP): vraag het centrum er START vanaf te sturen, of een "
                "ander nummer op te geven."}


def blocked_log(engine: Engine) -> tuple[LogBuilder, int]:
    log = LogBuilder(engine).directory({
        "BE-NCCN": [("email", "desk@nccn.example")],
        "NL-NCC": [("email", "desk@ncc.example"), ("sms", MOBILE)],
        "LU-CNC": [("email", "desk@cnc.example")],
    }).playbook(SMS_PLAYBOOK)
    run = log.run(T0)
    for org in ORGS:
        log.ping(run, org, "email", sent_at=T0, response_s=40)
    log.ping(run, "NL-NCC", "sms", sent_at=T0, outcome="blocked")
    sms = log.endpoints[("NL-NCC", "sms")]
    log.event(T0 + timedelta(minutes=2), ev.ENDPOINT_STATUS, run_id=run, organisation_code="NL-NCC", channel="sms",
              endpoint_id=sms, status="blocked", reason="+31******678 replied STOP")
    with session_scope(engine) as s:
        endpoint = s.get(Endpoint, sms)
        assert endpoint is not None
        endpoint.status = "blocked"
        s.add(endpoint)
    log.close(run)
    return log, run


def test_the_test_report_asks_the_centre_to_send_start_or_give_another_number(engine: Engine) -> None:
    _log, run = blocked_log(engine)
    report = build_test_report(engine, run)
    [point] = [a for a in report.action_points if a.channel == "sms"]
    assert (point.kind, point.organisation, point.address) == ("unblock_number", "NL-NCC", MOBILE)
    assert [a for a in report.directory_state.action_points if a.channel == "sms"] == []  # said once
    for lang, advice in ADVICE.items():
        assert advice in render_html(report, lang)
    changes = render_html(report, "nl").split("Wijzigingen in de contactenlijst door deze test")[1]
    assert "geblokkeerd" in changes.split("</table>")[0]


def test_a_later_report_still_lists_the_blocked_number_until_it_sends_start(engine: Engine) -> None:
    log, _run = blocked_log(engine)
    later = log.run(T0 + timedelta(days=14))
    for org in ORGS:
        log.ping(later, org, "email", sent_at=T0 + timedelta(days=14), response_s=40)
    log.close(later)
    [point] = [a for a in build_test_report(engine, later).directory_state.action_points if a.channel == "sms"]
    assert (point.kind, point.address) == ("unblock_number", MOBILE)
    march = compute_monthly_figures(engine, "2026-03")
    assert [(a.kind, a.address) for a in march.action_points if a.channel == "sms"] == [("unblock_number", MOBILE)]
    [april] = [a for a in compute_monthly_figures(engine, "2026-04").action_points if a.channel == "sms"]
    assert (april.kind, april.address, april.from_earlier_month) == ("unblock_number", MOBILE, True)
    # The number sent START: from then on no report asks for it.
    log.event(datetime(2026, 4, 2, 10, 0, tzinfo=UTC), ev.ENDPOINT_STATUS, organisation_code="NL-NCC", channel="sms",
              endpoint_id=log.endpoints[("NL-NCC", "sms")], status="active", reason="+31******678 sent START")
    with session_scope(engine) as s:
        endpoint = s.get(Endpoint, log.endpoints[("NL-NCC", "sms")])
        assert endpoint is not None
        endpoint.status = "active"
        s.add(endpoint)
    assert [a for a in compute_monthly_figures(engine, "2026-04").action_points if a.channel == "sms"] == []
    assert [a for a in build_test_report(engine, later).directory_state.action_points if a.kind == "unblock_number"] == []


def test_the_directory_edition_shows_the_blocked_number_in_the_readers_language(engine: Engine) -> None:
    blocked_log(engine)
    edition = publish_directory(engine, FrozenClock(T0 + timedelta(days=1)))
    [entry] = [e for c in edition.contacts for e in c.endpoints if e.kind == "sms"]
    assert entry.status == "blocked"
    for lang, word in (("en", "blocked"), ("nl", "geblokkeerd"), ("fr", "bloqué"), ("de", "gesperrt")):
        assert f"{MOBILE}</span> ({word})" in render_html(edition, lang)
