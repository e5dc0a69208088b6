"""BigBlueButton: the API's checksum exactly as documented, presence by polling, a final look
before each deadline, the bridge down (a provider failure, not the centre's), the room ended
with its run."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy.engine import Engine

from channels.video.bigbluebutton import BigBlueButtonBridge, checksum, signed_query
from channels.video.fake_bigbluebutton import FakeBigBlueButton, strip_checksum
from channels.video.identity import room_name
from commtest.clock import UTC, FrozenClock
from commtest.errors import ChannelError
from tests.channels.video_cap_support import BBB_SECRET, Links, start_links

# The worked example of the BigBlueButton API documentation ("Usage": create, shared secret
# 639259d4-...): its SHA-1 is the one the documentation prints.
DOC_QUERY = "name=Test+Meeting&meetingID=abc123&attendeePW=111222&moderatorPW=333444"


def test_the_checksum_is_the_documented_sha1_of_call_name_query_and_secret() -> None:
    assert checksum("create", DOC_QUERY, BBB_SECRET, "sha1") == "1fcbb0c4fc1f039f73aa6d697d2db9ba7f803f17"


def test_the_checksum_uses_the_configured_algorithm_over_the_same_string() -> None:
    # SHA-256 of "create" + query + secret (servers with supportedChecksumAlgorithms=sha256)
    assert checksum("create", DOC_QUERY, BBB_SECRET, "sha256") == \
        "da9185f7f333cfdfcd6eeac32dca3777510c4c436020d8b887ba5515bd1d189e"
    with pytest.raises(ValueError):
        checksum("create", DOC_QUERY, BBB_SECRET, "md5")


def test_a_call_without_parameters_signs_the_empty_query() -> None:
    assert signed_query("getMeetings", {}, BBB_SECRET, "sha1") == \
        f"checksum={checksum('getMeetings', '', BBB_SECRET, 'sha1')}"


def test_the_signed_url_is_sent_unchanged_and_the_server_accepts_it(clock: FrozenClock) -> None:
    fake = FakeBigBlueButton(BBB_SECRET, clock)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.query.decode())
        return fake.handle_request(request)

    bridge = BigBlueButtonBridge("https://bbb.commtest.example/bigbluebutton/api", BBB_SECRET, clock,
                                 client=httpx.Client(transport=httpx.MockTransport(handler)))
    room = bridge.room_for(7)
    bridge.open_room(room, clock.now())
    rest, given = strip_checksum(seen[0])
    assert given == checksum("create", rest, BBB_SECRET, "sha256")
    assert parse_qs(rest)["meetingID"] == [room_name(BBB_SECRET, 7)]
    assert parse_qs(rest)["meetingExpireIfNoUserJoinedInMinutes"] == ["240"]  # not BigBlueButton's 5


def test_a_wrong_secret_is_a_checksum_error_that_names_the_setting(clock: FrozenClock) -> None:
    fake = FakeBigBlueButton(BBB_SECRET, clock)
    bridge = BigBlueButtonBridge("https://bbb.commtest.example/bigbluebutton/api", "not-the-secret", clock,
                                 client=httpx.Client(transport=httpx.MockTransport(fake.handle_request)))
    with pytest.raises(ChannelError) as err:
        bridge.open_room(bridge.room_for(7), clock.now())
    assert err.value.code == "bbb-checksum" and "COMMTEST_BIGBLUEBUTTON_SECRET" in err.value.message


@pytest.fixture
def links(engine: Engine, clock: FrozenClock) -> Iterator[Links]:
    lk = start_links(engine, clock, bridge="bigbluebutton", bigbluebutton_poll_seconds=30)
    yield lk
    lk.close()


def join(links: Links, org: str) -> str:
    url = links.join_url(org)
    assert urlsplit(url).path.endswith("/join")
    r = links.bbb.handle_request(httpx.Request("GET", url))
    assert r.status_code == 200, r.text
    return parse_qs(urlsplit(url).query)["userID"][0]


def test_sending_creates_the_runs_meeting_once(links: Links) -> None:
    room = room_name(BBB_SECRET, links.run_id)
    assert list(links.bbb.meetings) == [room]
    assert links.bbb.calls.count("create") == 1


def test_presence_is_polled_and_a_join_acknowledges_at_the_poll_that_saw_it(links: Links) -> None:
    links.tick(minutes=2)
    join(links, "XB-TWO")
    links.clock.advance(seconds=10)
    links.runs.tick()  # 10 s after the last poll: not asked yet
    assert links.pings("video")["XB-TWO"].acked_at is None
    links.tick(seconds=25)  # the interval has passed: asked
    ping = links.pings("video")["XB-TWO"]
    assert ping.outcome == "acked" and ping.ack_method == "video-join" and ping.ack_by == "Centre Two desk (XB-TWO)"
    assert ping.acked_at is not None and ping.sent_at is not None
    assert ping.acked_at - ping.sent_at == timedelta(minutes=2, seconds=35)  # never earlier than observed
    assert links.pings("video")["XA-ONE"].acked_at is None


def test_someone_else_in_the_meeting_does_not_count(links: Links) -> None:
    room = room_name(BBB_SECRET, links.run_id)
    links.bbb.meetings[room].attendees["w_moderator"] = "The coordinator"
    links.bbb.meetings[room].attendees["ct-1-2-XA-ONE-0000000000000000"] = "A forged identity"
    links.tick(minutes=1)
    assert all(p.acked_at is None for p in links.pings("video").values())


def test_a_join_just_before_the_deadline_is_seen_before_the_deadline_is_judged(links: Links) -> None:
    links.tick(minutes=19, seconds=50)
    join(links, "XA-ONE")
    links.tick(seconds=8.5)  # 1.5 s before the deadline; the last poll was 8.5 s ago
    ping = links.pings("video")["XA-ONE"]
    assert ping.outcome == "acked"


def test_the_bridge_down_at_sending_is_a_provider_failure_not_the_centres_fault(engine: Engine,
                                                                                clock: FrozenClock) -> None:
    lk = start_links(engine, clock, bridge="bigbluebutton")
    try:
        # start_links already sent; a second run on a bridge that is down:
        lk.bbb.down = True
        run2 = lk.runs.create_run("links-playbook")
        lk.runs.start_run(run2)
        lk.runs.tick()
        lk.run_id = run2
        video = lk.pings("video")
        assert {p.outcome for p in video.values()} == {"provider_failure"}
        assert "BigBlueButton answered HTTP 503" in (video["XA-ONE"].error or "")
    finally:
        lk.close()


def test_the_bridge_down_at_the_deadline_is_a_provider_failure_not_silence(links: Links) -> None:
    links.tick(minutes=5)
    links.bbb.down = True
    links.tick(minutes=15, seconds=1)  # past the deadline, and the bridge cannot be asked
    video = links.pings("video")
    assert {p.outcome for p in video.values()} == {"provider_failure"}
    assert "could not be asked who joined" in (video["XA-ONE"].error or "")


def test_the_meeting_is_ended_when_the_run_ends(links: Links) -> None:
    join(links, "XA-ONE")
    for _ in range(4):
        links.tick(minutes=10)
    assert links.runs.is_settled(links.run_id)
    assert links.bbb.ended == [room_name(BBB_SECRET, links.run_id)]
    assert links.video.open_room_runs() == set()


def test_after_a_restart_the_open_meetings_are_watched_again(clock: FrozenClock) -> None:
    fake = FakeBigBlueButton(BBB_SECRET, clock)
    client = httpx.Client(transport=httpx.MockTransport(fake.handle_request))
    bridge = BigBlueButtonBridge("https://bbb.commtest.example/bigbluebutton/api", BBB_SECRET, clock, client=client)
    bridge.open_room(bridge.room_for(41), datetime(2026, 4, 14, 10, tzinfo=UTC))
    fake.meetings["someone-elses-meeting"] = fake.meetings[room_name(BBB_SECRET, 41)].__class__(
        "someone-elses-meeting", "x", "i", "a", "m", 0)
    assert [r.run_id for r in bridge.existing_rooms()] == [41]
