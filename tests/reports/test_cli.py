"""`commtest report ...` and `commtest user ...` end to end, in-process."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import vobject
from pypdf import PdfReader
from sqlmodel import select

from commtest import events as ev
from commtest.clock import UTC, FrozenClock
from commtest.db import session_scope
from commtest.errors import PermissionDenied
from commtest.models import Endpoint, Event
from commtest.settings import load_settings
from commtest.users import add_user, check_password
from reports.mailing import build_monthly_email
from reports.monthly import generate_monthly, sign_monthly
from tests.reports.builder import LogBuilder

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def month_log(engine):  # type: ignore[no-untyped-def]
    log = LogBuilder(engine).directory()
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=120)
    log.ping(run, "NL-NCC", "email", sent_at=T0, response_s=1200)
    log.ping(run, "BE-NCCN", "voice", sent_at=T0, response_s=40)
    log.ping(run, "NL-NCC", "voice", sent_at=T0, outcome="bounced")
    log.close(run)
    return log, run


def answer_after_close(log: LogBuilder, run: int, org: str, channel: str) -> None:
    """An officer answers a ping of a closed run, through the engine's own path."""
    from commtest.models import Ping
    from scheduler.records import acknowledge

    with session_scope(log.engine, durable=True) as s:
        ping = s.exec(select(Ping).where(Ping.run_id == run, Ping.organisation_code == org,
                                         Ping.channel == channel)).first()
        assert ping is not None
        result = acknowledge(s, ping, T0 + timedelta(days=40), method="link", actor="web")
    assert result.status == "after_close"


def test_a_reviewer_signs_and_the_month_is_frozen_against_later_events(run_cli, month_log) -> None:  # type: ignore[no-untyped-def]
    log, run = month_log
    assert run_cli("user", "add", "rvw", "--role", "reviewer", "--name", "Ria Reviewer", "--password-stdin",
                   input="correct horse battery\n").exit_code == 0
    first = run_cli("report", "monthly", "2026-03", "--format", "json")
    assert first.exit_code == 0, first.output
    wrong = run_cli("report", "sign", "2026-03", "--user", "rvw", "--comment", "x", "--password-stdin", input="guess\n")
    assert wrong.exit_code == 2 and "wrong user name or password for 'rvw'; nothing was signed" in wrong.stderr
    result = run_cli("report", "sign", "2026-03", "--user", "rvw", "--comment", "Read; NL phone to be fixed.",
                     "--password-stdin", input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    assert "signed by Ria Reviewer" in result.stdout
    # NL's e-mail is answered (through its link) after the test closed and the month was signed.
    answer_after_close(log, run, "NL-NCC", "email")
    row = generate_monthly(log.engine, "2026-03", FrozenClock(datetime(2026, 5, 1, tzinfo=UTC)))
    assert row.status == "signed" and row.signed_by == "rvw" and row.signer_name == "Ria Reviewer"
    assert row.data["totals"]["checks"] == 4
    assert row.comment == "Read; NL phone to be fixed." and len(row.content_hash) == 64
    with session_scope(log.engine) as s:
        signed = s.exec(select(Event).where(Event.kind == "report.signed")).one()
    assert signed.data["content_hash"] == row.content_hash and signed.data["by"] == "rvw"
    again = run_cli("report", "sign", "2026-03", "--user", "rvw", "--comment", "twice", "--password-stdin",
                    input="correct horse battery\n")
    assert again.exit_code == 2 and "it is frozen" in again.stderr


def test_a_viewer_cannot_sign_and_is_told_who_may(run_cli, month_log) -> None:  # type: ignore[no-untyped-def]
    run_cli("user", "add", "vera", "--role", "viewer", "--password-stdin", input="vera-own-secret-1\n")
    result = run_cli("report", "sign", "2026-03", "--user", "vera", "--comment", "ok", "--password-stdin",
                     input="vera-own-secret-1\n")
    assert result.exit_code == 2
    assert "user 'vera' has role viewer; only a reviewer or admin may sign a monthly report" in result.stderr


def test_a_coordinator_cannot_sign_either(month_log) -> None:  # type: ignore[no-untyped-def]
    log, _ = month_log
    clock = FrozenClock(T0)
    add_user(log.engine, "cora", "coordinator", clock)
    with pytest.raises(PermissionDenied, match="has role coordinator"):
        sign_monthly(log.engine, "2026-03", "cora", "ok", clock)


def test_verify_matches_then_catches_an_edited_number(run_cli, month_log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, run = month_log
    path = tmp_path / "run.json"
    assert run_cli("report", "test", str(run), "--format", "json", "-o", str(path)).exit_code == 0
    ok = run_cli("report", "verify", str(path))
    assert ok.exit_code == 0 and "every number matches" in ok.stdout
    data = json.loads(path.read_text())
    be_email = next(c for c in data["checks"] if c["organisation"] == "BE-NCCN" and c["channel"] == "email")
    be_email["response_ms"] += 1000
    data["matrix"][0]["in_target"] = 7
    path.write_text(json.dumps(data))
    bad = run_cli("report", "verify", str(path))
    assert bad.exit_code == 1
    assert "checks[BE-NCCN/BE-NCCN/crisis-desk/email].response_ms: file says 120000, the event log gives 119000" \
        in bad.stdout
    assert "matrix[BE-NCCN/email].in_target: file says 7" in bad.stdout


def test_an_answer_after_close_changes_no_verdict_and_verify_names_that_one_event(run_cli, month_log,
                                                                                  tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, run = month_log
    path = tmp_path / "run.json"
    assert run_cli("report", "test", str(run), "--format", "json", "-o", str(path)).exit_code == 0
    before = json.loads(path.read_text())
    answer_after_close(log, run, "NL-NCC", "email")
    result = run_cli("report", "verify", str(path))
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    # The one new event, named once; no verdict, check or figure changed (no positional noise).
    assert [line for line in lines if "added after the report" in line] == [
        line for line in lines if "timeline[event" in line]
    assert len([line for line in lines if "added after the report" in line]) == 1
    assert not [line for line in lines if line.startswith(("matrix", "checks", "summary", "outcome_counts"))]
    from reports.test_report import build_test_report

    after = build_test_report(log.engine, run)
    assert [m.model_dump(mode="json") for m in after.matrix] == before["matrix"]
    [late] = after.answers_after_close
    assert (late.organisation, late.channel, late.method) == ("NL-NCC", "email", "link")
    assert "answered after the test closed, at" in run_cli("report", "test", str(run), "-o",
                                                          str(tmp_path / "r.html")).stdout or True
    assert "answered after the test closed, at" in (tmp_path / "r.html").read_text()


def test_verify_checks_the_monthly_figures_too(run_cli, month_log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "m.json"
    assert run_cli("report", "monthly", "2026-03", "--format", "json", "-o", str(path)).exit_code == 0
    assert run_cli("report", "verify", str(path)).exit_code == 0
    data = json.loads(path.read_text())
    data["figures"]["totals"]["p90_ms"] = 1
    path.write_text(json.dumps(data))
    bad = run_cli("report", "verify", str(path))
    assert bad.exit_code == 1 and "figures.totals.p90_ms: file says 1" in bad.stdout


def test_verify_refuses_a_file_that_is_not_a_commtest_report(run_cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "other.json"
    path.write_text('{"hello": 1}')
    result = run_cli("report", "verify", str(path))
    assert result.exit_code == 2 and "not a commtest test or monthly report" in result.stderr
    path.write_text("not json")
    assert "not JSON" in run_cli("report", "verify", str(path)).stderr


def test_a_format_that_does_not_apply_is_a_command_line_error(run_cli, month_log) -> None:  # type: ignore[no-untyped-def]
    _, run = month_log
    result = run_cli("report", "test", str(run), "--format", "vcard")
    assert result.exit_code == 2
    assert "--format vcard: not available for the test report; use one of html, pdf, csv, json" in result.stderr


def test_an_unknown_run_and_a_bad_month_exit_2(run_cli) -> None:  # type: ignore[no-untyped-def]
    missing = run_cli("report", "test", "999")
    assert missing.exit_code == 2 and "run 999 does not exist" in missing.stderr
    bad = run_cli("report", "monthly", "March")
    assert bad.exit_code == 2 and "expected YYYY-MM" in bad.stderr


def test_the_default_output_goes_under_the_report_dir(run_cli, month_log, cli_env) -> None:  # type: ignore[no-untyped-def]
    _, run = month_log
    result = run_cli("report", "test", str(run), "--lang", "de")
    path = Path(result.stdout.strip())
    assert path == Path(cli_env["COMMTEST_REPORT_DIR"]) / f"run-{run}.html"
    assert "Reaktion je Organisation und Kanal" in path.read_text() or "Zusammenfassung" in path.read_text()
    csv = run_cli("report", "monthly", "2026-03", "--format", "csv")
    names = sorted(Path(p).name for p in csv.stdout.split())
    assert "monthly-2026-03.per_org_channel.csv" in names and "monthly-2026-03.trend.csv" in names


def test_directory_editions_list_what_changed_and_vcards_parse(run_cli, month_log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, _ = month_log
    first = run_cli("report", "directory", "--format", "json", "-o", str(tmp_path / "d1.json"))
    assert first.exit_code == 0
    assert json.loads((tmp_path / "d1.json").read_text())["changes"] == []
    with session_scope(log.engine) as s:
        nl_phone = s.get(Endpoint, log.endpoints[("NL-NCC", "voice")])
        nl_phone.status = "invalid"
        s.add(nl_phone)
        s.add(Endpoint(contact_point_id=log.cps["LU-CNC"], kind="voice", address="+447700900103"))
    run_cli("report", "directory", "--format", "json", "-o", str(tmp_path / "d2.json"))
    changes = {(c["change"], c["key"]) for c in json.loads((tmp_path / "d2.json").read_text())["changes"]}
    assert changes == {
        ("changed", "NL-NCC/crisis-desk|voice|+447700900102"),
        ("added", "LU-CNC/crisis-desk|voice|+447700900103"),
    }
    run_cli("report", "directory", "--format", "vcard", "-o", str(tmp_path / "d.vcf"))
    cards = list(vobject.readComponents((tmp_path / "d.vcf").read_text()))
    assert [c.version.value for c in cards] == ["4.0"] * 3
    lu = next(c for c in cards if c.fn.value == "LU-CNC duty desk")
    assert lu.tel.value == "tel:+447700900103" and lu.tel.params["TYPE"] == ["voice"]
    assert [lang.value for lang in lu.lang_list] == ["fr"]
    nl = next(c for c in cards if c.fn.value == "NL-NCC duty desk")
    assert not hasattr(nl, "tel")  # the invalid phone is left out


def test_user_add_and_list_and_the_password_hash(run_cli, engine) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("user", "add", "ria", "--role", "reviewer", "--email", "ria@benelux.example", "--password-stdin",
                     input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    assert check_password(engine, "ria", "correct horse battery") and not check_password(engine, "ria", "wrong")
    listing = run_cli("user", "list").stdout
    assert "ria" in listing and "reviewer" in listing and "ria@benelux.example" in listing
    dupe = run_cli("user", "add", "ria", "--role", "viewer")
    assert dupe.exit_code == 2 and "user 'ria' exists already" in dupe.stderr
    bad = run_cli("user", "add", "x y", "--role", "viewer")
    assert bad.exit_code == 2 and "username 'x y'" in bad.stderr


def test_the_test_report_pdf_contains_the_verdict_table(month_log, tmp_path: Path, request) -> None:  # type: ignore[no-untyped-def]
    if "postgresql" in request.node.name:
        pytest.skip("rendering does not depend on the database; once is enough")
    from reports.test_report import write_test_report

    log, run = month_log
    (pdf,) = write_test_report(log.engine, run, tmp_path, formats=("pdf",), lang="en")
    text = "\n".join(page.extract_text() for page in PdfReader(pdf).pages)
    flat = " ".join(text.split())
    assert "Summary" in flat and "Action points" in flat
    # The matrix: one row per organisation, one column per channel.
    assert "Nationaal Crisiscentrum / Centre de Crise National pass" in flat
    assert "Centre national de crise no endpoint no endpoint" in flat  # LU-CNC: nothing to ping at all
    # The page header names the playbook and the run; pages are numbered.
    assert "Benelux quarterly communication test" in PdfReader(pdf).pages[1].extract_text()
    assert "Page 1 / " in flat


def test_the_monthly_email_goes_to_the_reviewers_with_the_pdf(month_log, request) -> None:  # type: ignore[no-untyped-def]
    if "postgresql" in request.node.name:
        pytest.skip("rendering does not depend on the database; once is enough")
    log, _ = month_log
    row = generate_monthly(log.engine, "2026-03", FrozenClock(T0 + timedelta(days=30)))
    settings = load_settings(reviewers=["ria@benelux.example", "rik@benelux.example"], mail_from="commtest@benelux.example")
    msg = build_monthly_email(row, settings)
    assert msg["To"] == "ria@benelux.example, rik@benelux.example" and "2026-03" in msg["Subject"]
    assert msg["Auto-Submitted"] == "auto-generated"
    (pdf,) = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert pdf.get_content().startswith(b"%PDF")
    assert "Answered: 75.0%" in msg.get_body(("plain",)).get_content()


def _signed_month(run_cli, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    run_cli("user", "add", "rvw", "--role", "reviewer", "--password-stdin", input="correct horse battery\n")
    assert run_cli("report", "sign", "2026-03", "--user", "rvw", "--comment", "Seen.", "--password-stdin",
                   input="correct horse battery\n").exit_code == 0
    path = tmp_path / "signed.json"
    assert run_cli("report", "monthly", "2026-03", "--format", "json", "-o", str(path)).exit_code == 0
    return path


def test_verify_of_a_signed_month_is_unchanged_by_an_answer_after_close(run_cli, month_log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, run = month_log
    path = _signed_month(run_cli, tmp_path)
    answer_after_close(log, run, "NL-NCC", "email")  # arrives after the signature
    result = run_cli("report", "verify", str(path))
    assert result.exit_code == 0, result.output
    assert "every number and the signature match" in result.stdout
    assert "would differ" not in result.stdout  # a closed run stays closed: nothing to drift


def test_verify_catches_a_forged_signature_on_a_draft(run_cli, month_log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "draft.json"
    assert run_cli("report", "monthly", "2026-03", "--format", "json", "-o", str(path)).exit_code == 0
    data = json.loads(path.read_text())
    data.update(status="signed", signed_by="rvw", comment="looks fine", content_hash="0" * 64)
    path.write_text(json.dumps(data))
    result = run_cli("report", "verify", str(path))
    assert result.exit_code == 1
    assert "status: file says 'signed'" in result.output + result.stderr


def test_verify_catches_an_edited_comment_or_number_in_a_signed_report(run_cli, month_log, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = _signed_month(run_cli, tmp_path)
    data = json.loads(path.read_text())
    data["comment"] = "All centres passed."
    data["figures"]["totals"]["checks"] += 1
    path.write_text(json.dumps(data))
    result = run_cli("report", "verify", str(path))
    out = result.output + result.stderr
    assert result.exit_code == 1
    assert "comment: file says 'All centres passed.'" in out and "figures.totals.checks" in out


def _reviewer(engine) -> None:  # type: ignore[no-untyped-def]
    add_user(engine, "rvw", "reviewer", FrozenClock(T0), display_name="Ria Reviewer", password="correct horse battery")


@pytest.mark.parametrize("now", [datetime(2026, 3, 20, tzinfo=UTC), datetime(2026, 3, 31, 21, 59, tzinfo=UTC)])
def test_a_month_cannot_be_signed_before_it_ends_in_the_reports_zone(month_log, now: datetime) -> None:  # type: ignore[no-untyped-def]
    from reports.monthly import NotSignable

    log, _ = month_log
    _reviewer(log.engine)
    # 31 March 21:59 UTC is 23:59 in Brussels: still March there.
    with pytest.raises(NotSignable, match=r"2026-03 is not over: it ends at 2026-04-01 00:00 Europe/Brussels"):
        sign_monthly(log.engine, "2026-03", "rvw", "too early", FrozenClock(now))


def test_a_month_with_an_open_run_cannot_be_signed_and_says_which(month_log) -> None:  # type: ignore[no-untyped-def]
    from reports.monthly import NotSignable

    log, _ = month_log
    _reviewer(log.engine)
    open_run = log.run(T0 + timedelta(days=5))  # still running
    with pytest.raises(NotSignable, match=rf"run\(s\) {open_run} of 2026-03 are not settled"):
        sign_monthly(log.engine, "2026-03", "rvw", "x", FrozenClock(datetime(2026, 4, 2, tzinfo=UTC)))
    log.close(open_run)
    row = sign_monthly(log.engine, "2026-03", "rvw", "now", FrozenClock(datetime(2026, 4, 2, tzinfo=UTC)))
    assert row.status == "signed" and row.signer_name == "Ria Reviewer"


def test_a_draft_of_a_future_month_is_refused(run_cli, month_log) -> None:  # type: ignore[no-untyped-def]
    from reports.monthly import FutureMonth

    log, _ = month_log
    with pytest.raises(FutureMonth, match="2026-05 has not begun"):
        generate_monthly(log.engine, "2026-05", FrozenClock(datetime(2026, 4, 2, tzinfo=UTC)))
    far = run_cli("report", "monthly", "2099-01")
    assert far.exit_code == 2 and "has not begun" in far.stderr


def test_a_month_with_simulated_checks_is_signed_only_with_include_simulated(engine) -> None:  # type: ignore[no-untyped-def]
    from reports.monthly import NotSignable

    log = LogBuilder(engine).directory()
    run = log.run(T0)
    log.ping(run, "BE-NCCN", "email", sent_at=T0, response_s=30, simulated=True)
    log.close(run)
    _reviewer(engine)
    clock = FrozenClock(datetime(2026, 4, 2, tzinfo=UTC))
    with pytest.raises(NotSignable, match="1 simulated check.*--include-simulated"):
        sign_monthly(engine, "2026-03", "rvw", "x", clock)
    row = sign_monthly(engine, "2026-03", "rvw", "rehearsal only", clock, include_simulated=True)
    assert row.includes_simulated
    with session_scope(engine) as s:
        signed = s.exec(select(Event).where(Event.kind == "report.signed")).one()
    assert signed.data["includes_simulated"] is True and signed.data["name"] == "Ria Reviewer"


@pytest.mark.parametrize("lang", ["en", "nl", "fr", "de"])
def test_no_column_header_of_a_pdf_breaks_inside_a_word(month_log, tmp_path: Path, lang: str, request) -> None:  # type: ignore[no-untyped-def]
    import re
    import shutil
    import subprocess

    if "postgresql" in request.node.name:
        pytest.skip("rendering does not depend on the database; once is enough")
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; .ci/run installs it")
    from reports.render import render_html
    from reports.test_report import build_test_report, write_test_report

    log, run = month_log
    html = render_html(build_test_report(log.engine, run), lang)
    headers = {w for th in re.findall(r"<th>(.*?)</th>", html, re.S)
               for w in re.findall(r"\w{4,}", re.sub(r"<[^>]+>", " ", th))}
    (pdf,) = write_test_report(log.engine, run, tmp_path, formats=("pdf",), lang=lang)
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    words = set(re.findall(r"\w+", text))
    assert sorted(h for h in headers if h not in words) == []


def test_the_daemon_publishes_a_directory_edition_after_a_run_only_when_something_changed(month_log) -> None:  # type: ignore[no-untyped-def]
    from commtest.cli.daemon_cmd import directory_after_runs
    from commtest.context import AppContext

    log, run = month_log
    clock = FrozenClock(T0 + timedelta(hours=2))
    app = AppContext(settings=load_settings(database_url=log.engine.url.render_as_string(hide_password=False)),
                     clock=clock, _engine=log.engine)
    first = directory_after_runs(app)
    assert first is not None
    assert directory_after_runs(app) is None  # no run completed since: nothing to publish
    clock.advance(86400)
    quiet = log.run(T0 + timedelta(days=1))  # a run that changes nothing in the directory
    log.close(quiet)
    assert directory_after_runs(app) is None
    proving = log.run(T0 + timedelta(days=2))
    log.ping(proving, "BE-NCCN", "email", sent_at=T0 + timedelta(days=2), response_s=30)
    log.event(T0 + timedelta(days=2, seconds=31), ev.ENDPOINT_VERIFIED, run_id=proving,
              endpoint_id=log.endpoints[("BE-NCCN", "email")])
    with session_scope(log.engine) as s:
        endpoint = s.get(Endpoint, log.endpoints[("BE-NCCN", "email")])
        endpoint.verified_at = T0 + timedelta(days=2, seconds=31)
        s.add(endpoint)
    log.close(proving)
    second = directory_after_runs(app)
    assert second is not None and second > first
    from commtest.models import DirectoryEdition

    with session_scope(log.engine) as s:
        edition = s.get(DirectoryEdition, second)
        assert edition is not None and edition.run_id == proving
