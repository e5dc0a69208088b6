"""A bridge that reports no joins: the ping's page offers "I am in the video room", recorded as
self-reported and shown as such (runs show, the run's checks, the test report), never as a join."""
from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from commtest.clock import FrozenClock
from commtest.context import AppContext
from commtest.facts import stored_facts
from tests.channels.video_cap_support import Links, start_links
from web.officer import acknowledge_by_link


@pytest.fixture
def links(engine: Engine, clock: FrozenClock) -> Iterator[Links]:
    lk = start_links(engine, clock, jitsi_presence="none", jitsi_webhook_token=None)
    yield lk
    lk.close()


def page_of(links: Links, org: str) -> str:
    return links.invite_of(org).ping.ack_url.replace("http://testserver", "")


def english(url: str) -> str:
    return f"{url}?lang=en"  # XA-ONE reads Dutch; the assertions read the English texts


def self_report(links: Links, org: str, name: str) -> httpx.Response:
    return acknowledge_by_link(links.client, english(page_of(links, org)), name)  # type: ignore[arg-type]


def test_the_page_offers_the_join_link_and_i_am_in_the_video_room(links: Links) -> None:
    page = links.client.get(english(page_of(links, "XA-ONE")))
    assert "Join the video room" in page.text and "I am in the video room" in page.text
    assert "recorded as reported by you" in page.text
    assert f'action="{page_of(links, "XA-ONE")}/video?lang=' in page.text


def test_i_am_in_the_video_room_is_recorded_as_self_reported(links: Links) -> None:
    links.tick(minutes=6)
    r = self_report(links, "XA-ONE", "J. Peeters (fictional)")
    assert r.status_code == 200 and "recorded as reported by you" in r.text
    ping = links.pings("video")["XA-ONE"]
    assert ping.outcome == "self_reported" and ping.ack_method == "self-reported"
    assert ping.ack_by == "J. Peeters (fictional)"


def test_self_reported_is_shown_as_such_in_runs_show_the_checks_and_the_test_report(
        links: Links, capsys: pytest.CaptureFixture[str]) -> None:
    from commtest.cli.runview import show_run
    from reports.test_report import build_test_report

    links.tick(minutes=6)
    self_report(links, "XA-ONE", "J. Peeters (fictional)")
    for _ in range(4):
        links.tick(minutes=10)
    assert links.runs.is_settled(links.run_id)
    show_run(AppContext(links.settings, links.clock, _engine=links.engine), links.run_id, pings=True)
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "XA-ONE" in line and "video" in line and "│" in line
               and "self" in line)
    assert "self_reported" in row
    assert "self-reported" in out and "video-join" not in out
    with links.engine.connect() as conn:
        check = next(c for c in stored_facts(conn, links.run_id).checks
                     if c.organisation_code == "XA-ONE" and c.channel == "video")
    assert (check.outcome, check.method) == ("self_reported", "self-reported")
    report = build_test_report(links.engine, links.run_id)
    line = next(c for c in report.checks if c.organisation == "XA-ONE" and c.channel == "video")
    assert (line.outcome, line.method) == ("self_reported", "self-reported")
    from reports.render import render_html

    assert "said they joined the video room" in render_html(report, "en")  # never shown as a verified join


def test_a_plain_confirmation_of_a_video_ping_is_refused(links: Links) -> None:
    page = links.client.get(english(page_of(links, "XA-ONE")))
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    r = links.client.post(english(page_of(links, "XA-ONE")), data={"csrf": csrf})
    assert r.status_code == 409 and "join" in r.text.lower()
    assert links.pings("video")["XA-ONE"].acked_at is None


def test_where_the_bridge_sees_joins_a_self_report_is_refused(engine: Engine, clock: FrozenClock) -> None:
    lk = start_links(engine, clock)  # Jitsi with event_sync: joins are observed
    try:
        r = lk.client.post(page_of(lk, "XA-ONE") + "/video", data={"csrf": "x"})
        assert r.status_code == 409
        assert lk.pings("video")["XA-ONE"].acked_at is None
    finally:
        lk.close()


def test_a_self_report_without_the_pages_csrf_token_is_refused(links: Links) -> None:
    r = links.client.post(page_of(links, "XA-ONE") + "/video", data={"csrf": "forged"})
    assert r.status_code == 403
    with links.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM ping WHERE acked_at IS NOT NULL")).scalar() == 0
