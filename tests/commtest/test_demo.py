"""`make demo` stays true: the demo runs a whole test and writes its reports."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from commtest.cli import cli


def test_the_demo_runs_a_whole_test_and_writes_the_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("COMMTEST_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["demo", "--speed", "150", "--dir", str(tmp_path / "demo")], catch_exceptions=False)
    out = result.output
    assert result.exit_code == 0, out
    assert "run completed" in out
    assert "/console/  (sign in as demo-coordinator, password " in out  # the console URL and a demo login
    # the simulated officers used the real link and a real reply
    assert "opened the link and pressed the button (HTTP 200)" in out
    assert "replied to the e-mail" in out
    # the outcome table, with the scripted story: NRW never answers the e-mail, Luxembourg is late
    rows = {tuple(c.strip() for c in line.split("│")[1:3]): line for line in out.splitlines() if line.count("│") > 5}
    assert "pass" in rows[("BE-NCCN", "email")]
    assert "fail" in rows[("DE-NW-LZ", "email")]
    assert "acked_late" in rows[("LU-CNC", "email")] and "fail" in rows[("LU-CNC", "email")]
    assert "pass" in rows[("DE-NW-LZ", "sms")]  # the escalation was answered
    # video through the Jitsi fake (real JWT links and event_sync webhooks), CAP through a fake partner
    assert "followed the join link and entered the video room (HTTP 200)" in out
    assert "answered the CAP alert with a signed CAP Ack (HTTP 200)" in out
    assert "ended when the run ended" in out
    for org in ("BE-NCCN", "NL-NCC", "DE-NW-LZ"):
        assert "pass" in rows[(org, "video")]
    assert "acked_late" in rows[("LU-CNC", "video")]
    # the CAP step pings NL-NCC only (the one centre with a CAP link): no "no endpoint", no gap for the others
    assert "pass" in rows[("NL-NCC", "cap")]
    assert [key for key in rows if key[1] == "cap"] == [("NL-NCC", "cap")]
    assert "no_endpoint" not in out and not [line for line in out.splitlines() if line.startswith("gap:")]
    reports = tmp_path / "demo" / "reports"
    written = {p.suffix for p in reports.iterdir()}
    assert {".html", ".pdf", ".csv", ".vcf"} <= written
