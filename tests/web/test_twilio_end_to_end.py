"""Done when: a run against the Twilio fake acknowledges by key press and by SMS, records
voicemail and busy, `commtest runs show` and the test report tell them apart, and a forged
webhook changes nothing."""
from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.engine import Engine

from channels.twilio.fake_script import CallScript, FakeScript, SmsScript
from channels.twilio.signature import SIGNATURE_HEADER, sign
from commtest.clock import FrozenClock
from tests.channels.twilio_support import ONE_VOICE, PUBLIC, SID, TWO_SMS, TWO_VOICE, twilio_world


def test_a_run_against_the_fake_tells_key_press_sms_voicemail_and_busy_apart(
        engine: Engine, clock: FrozenClock, run_cli: Any, tmp_path: Path) -> None:
    script = FakeScript(calls={ONE_VOICE: [CallScript(keys=(("1", 6),))],
                               TWO_VOICE: [CallScript("machine"), CallScript("busy")]},
                        messages={TWO_SMS: [SmsScript(replies=(("{code}", 50),))]})
    w = twilio_world(engine, clock, script)
    run_id = w.runs.create_run("phone-test")
    w.runs.start_run(run_id)
    w.runs.tick()
    # Someone who is not Twilio claims the first call was answered with a 1: refused, nothing changes.
    first = next(p for p in w.pings(run_id) if p.address == ONE_VOICE)
    url = f"{PUBLIC}/hooks/twilio/voice/gather?ping={first.id}&provider=twilio&n=0&say=x"
    params = {"AccountSid": SID, "CallSid": first.provider_ref or "", "Digits": "1"}
    forged = w.web.post(url, content=urlencode(params), headers={
        SIGNATURE_HEADER: sign("guessed-token", url, params), "Content-Type": "application/x-www-form-urlencoded"})
    assert forged.status_code == 403
    assert next(p for p in w.pings(run_id) if p.id == first.id).acked_at is None
    while not w.runs.is_settled(run_id):
        w.advance(10)
    pings = {(p.address, p.attempt): p for p in w.pings(run_id)}
    assert (pings[(ONE_VOICE, 1)].outcome, pings[(ONE_VOICE, 1)].ack_method) == ("acked", "keypress")
    assert pings[(TWO_VOICE, 1)].outcome == "voicemail"
    assert pings[(TWO_VOICE, 2)].outcome == "busy"
    assert (pings[(TWO_SMS, 1)].outcome, pings[(TWO_SMS, 1)].ack_method) == ("acked", "sms-reply")
    w.close()

    shown = run_cli("runs", "show", str(run_id), "--pings")
    assert shown.exit_code == 0, shown.output
    rows = [[c.strip() for c in line.strip().strip("│").split("│")] for line in shown.output.splitlines()]
    by_ping = {cells[0]: cells for cells in rows if len(cells) == 14 and cells[0].isdigit()}
    seen = {(cells[4], cells[5], cells[9], cells[13]) for cells in by_ping.values()}
    assert ("voice", "1", "acked", "keypress") in seen
    assert ("voice", "1", "voicemail", "-") in seen
    assert ("voice", "2", "busy", "-") in seen
    assert ("sms", "1", "acked", "sms-reply") in seen
    # The fake Twilio answered: the provider is named and the attempt marked simulated.
    assert all(cells[7] == "twilio (SIMULATED)" for cells in by_ping.values())

    from reports.test_report import write_test_report

    [html] = write_test_report(engine, run_id, tmp_path, formats=("html",), lang="en")
    text = html.read_text()
    # The report's own words may be the identifiers or their names (its texts are being rewritten).
    for either in (("keypress", "key pressed on the call"), ("sms-reply", "SMS reply with the code"),
                   ("voicemail", "answering machine"), ("busy", "line busy"), ("provider=twilio", "twilio")):
        assert any(words in text for words in either), either
