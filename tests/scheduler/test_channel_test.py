"""``commtest channel test KIND ADDRESS``: one real ping to one directory endpoint, waited for,
recorded as a channel test and left out of the monthly report."""
from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.twilio.fake import FakeTwilio
from channels.twilio.fake_script import CallScript, FakeScript, SmsScript
from commtest.clock import SystemClock
from commtest.db import session_scope
from commtest.models import CHANNEL_TEST_TRIGGER, Event, Ping, TestRun
from tests.channels.twilio_support import CALLER, SID, SMS_FROM, TOKEN
from tests.scheduler.seed import seed_directory


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def phones(engine: Engine, cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwilio]:
    """The directory, a fake Twilio on loopback that answers fast (real time), and the settings
    of a coordinator's machine where no daemon runs (the command serves the web app itself)."""
    seed_directory(engine)
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    fake = FakeTwilio(SystemClock(), callbacks=httpx.Client(timeout=10), script=FakeScript(
        default_call=CallScript(ring_after=0.2, answer_after=0.6, keys=(("1", 0.4),)),
        default_sms=SmsScript(deliver_after=0.2, replies=(("{code}", 0.3),))))
    fake.add_account(SID, TOKEN, {CALLER, SMS_FROM}, sms_url=f"{public}/hooks/twilio/sms/inbound")
    base = fake.serve(tick_s=0.01)
    for key, value in {"COMMTEST_CHANNELS": '{"voice": "twilio", "sms": "twilio"}', "COMMTEST_TWILIO_ACCOUNT_SID": SID,
                       "COMMTEST_TWILIO_AUTH_TOKEN": TOKEN, "COMMTEST_TWILIO_CALLER_ID": CALLER,
                       "COMMTEST_TWILIO_SMS_FROM": SMS_FROM, "COMMTEST_TWILIO_BASE_URL": base,
                       "COMMTEST_WEB_PORT": str(port), "COMMTEST_PUBLIC_BASE_URL": public,
                       "COMMTEST_TICK_SECONDS": "0.05", "COMMTEST_SECRET_KEY": "fictional-test-secret"}.items():
        monkeypatch.setenv(key, value)
    yield fake
    fake.stop()


def test_a_channel_test_calls_the_number_and_reports_the_key_press(engine: Engine, run_cli: Any,
                                                                    phones: FakeTwilio) -> None:
    result = run_cli("channel", "test", "voice", "+32 2 555 01 00", "--by", "coordinator")
    assert result.exit_code == 0, result.output
    assert "outcome: acked" in result.output and "by keypress" in result.output and "(SIMULATED)" in result.output
    assert [c.to for c in phones.calls] == ["+3225550100"]
    with session_scope(engine) as s:
        [run] = s.exec(select(TestRun)).all()
        assert (run.trigger, run.playbook_id, run.status, run.started_by) == (
            CHANNEL_TEST_TRIGGER, "commtest-channel-test", "completed", "coordinator")
        [ping] = s.exec(select(Ping)).all()
        assert (ping.channel, ping.address, ping.outcome, ping.ack_method) == ("voice", "+3225550100", "acked", "keypress")
        planned = s.exec(select(Event).where(Event.kind == "run.planned")).one()
        assert planned.data["trigger"] == CHANNEL_TEST_TRIGGER
    # The officer heard the channel test's own text, in the contact point's language (nl).
    spoken = phones.calls[0].spoken[0][2]
    assert spoken.startswith("Dit is een testoproep om dit nummer") and "Afzender: Coordination Office." in spoken


def test_a_channel_test_by_sms_is_confirmed_with_the_reply_code(engine: Engine, run_cli: Any, phones: FakeTwilio) -> None:
    result = run_cli("channel", "test", "sms", "+32470555010")
    assert result.exit_code == 0, result.output
    assert "by sms-reply" in result.output
    assert "Testbericht om dit nummer" in phones.messages[0].body
    assert "(afzender: Coordination Office)" in phones.messages[0].body  # a name never bent by a preposition


def test_the_monthly_report_leaves_channel_tests_out(engine: Engine, run_cli: Any, phones: FakeTwilio) -> None:
    from reports.monthly_figures import compute_monthly_figures

    assert run_cli("channel", "test", "voice", "+3225550100").exit_code == 0
    month = datetime.now(timezone.utc).strftime("%Y-%m")
    figures = compute_monthly_figures(engine, month)
    assert figures.runs == [] and figures.totals.checks == 0 and figures.trend[-1].runs == 0
    assert figures.simulated.checks == 0 and figures.trend[-1].checks == 0


def test_an_address_that_is_not_in_the_directory_is_refused_with_what_to_do(run_cli: Any, phones: FakeTwilio) -> None:
    result = run_cli("channel", "test", "voice", "+3225550999")
    assert result.exit_code == 2
    assert "no voice endpoint +32*****999 in the directory: import it first" in result.output
    assert phones.calls == []


def test_a_manual_check_cannot_be_a_channel_test(run_cli: Any, phones: FakeTwilio) -> None:
    result = run_cli("channel", "test", "manual", "radio")
    assert result.exit_code == 2 and "a manual check needs a person" in result.output
