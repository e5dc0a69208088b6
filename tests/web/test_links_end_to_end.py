"""One run over e-mail, video (Jitsi fake) and CAP (fake partner): the officers' answers come
back through the web app's pages and hooks, and `runs show` and the test report show each."""
from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from commtest.clock import FrozenClock
from commtest.context import AppContext
from tests.channels.video_cap_support import start_links
from web.officer import acknowledge_by_link


def test_video_joins_and_a_cap_ack_are_recorded_next_to_email(engine: Engine, clock: FrozenClock,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from commtest.cli.runview import show_run
    from reports.test_report import build_test_report

    lk = start_links(engine, clock)
    try:
        lk.tick(minutes=2)
        for p in lk.mail.sent:  # both desks open the e-mail's link and press the button
            acknowledge_by_link(lk.client, p.ack_url.replace("http://testserver", ""), "Duty officer (fictional)")  # type: ignore[arg-type]
        lk.tick(minutes=1)
        for org in ("XA-ONE", "XB-TWO"):
            lk.jitsi.join(lk.join_url(org))
        lk.jitsi.flush(lk.post_jitsi)
        assert lk.partner.flush(lk.clock.now(), lk.post_cap) == [200]  # the partner's Ack, 3 minutes on
        for _ in range(4):
            lk.tick(minutes=10)
        assert lk.runs.is_settled(lk.run_id)
        pings = {(p.organisation_code, p.channel): (p.outcome, p.ack_method) for p in _all(lk)}
        assert pings == {
            ("XA-ONE", "email"): ("acked", "link"), ("XB-TWO", "email"): ("acked", "link"),
            ("XA-ONE", "video"): ("acked", "video-join"), ("XB-TWO", "video"): ("acked", "video-join"),
            ("XB-TWO", "cap"): ("acked", "cap-ack"),
        }
        show_run(AppContext(lk.settings, lk.clock, _engine=lk.engine), lk.run_id, pings=True)
        out = capsys.readouterr().out
        for method in ("link", "video-join", "cap-ack"):
            assert method in out
        rows = [line for line in out.splitlines() if "│" in line and "pass" in line]
        assert {(r.split("│")[1].strip(), r.split("│")[2].strip()) for r in rows} >= {
            ("XA-ONE", "email"), ("XA-ONE", "video"), ("XB-TWO", "video"), ("XB-TWO", "cap")}
        assert any("XA-ONE" in line and "cap" in line and "no_endpoint" in line for line in out.splitlines())
        report = build_test_report(lk.engine, lk.run_id)
        assert {(c.organisation, c.channel, c.method) for c in report.checks} >= {
            ("XA-ONE", "video", "video-join"), ("XB-TWO", "cap", "cap-ack"), ("XA-ONE", "email", "link")}
    finally:
        lk.close()


def _all(lk):  # type: ignore[no-untyped-def]
    from sqlmodel import select

    from commtest.db import session_scope
    from commtest.models import Ping

    with session_scope(lk.engine) as s:
        return list(s.exec(select(Ping).where(Ping.run_id == lk.run_id)).all())
