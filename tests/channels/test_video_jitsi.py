"""Jitsi: JWT join links, event_sync webhooks (signed or not), who counts, duplicates,
leaving, and the room closed when the run ends."""
from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import jwt
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.video.fake_jitsi import JoinRefused
from channels.video.identity import guest_identity, parse_identity, room_name
from channels.video.jitsi import JitsiBridge, event_reports, sign
from commtest.clock import UTC, FrozenClock
from commtest.db import session_scope
from commtest.models import Event
from tests.channels.video_cap_support import JITSI_SECRET, WEBHOOK_TOKEN, Links, start_links


@pytest.fixture
def links(engine: Engine, clock: FrozenClock) -> Iterator[Links]:
    lk = start_links(engine, clock, bridge="jitsi")
    yield lk
    lk.close()


def ack_events(links: Links, ping_id: int) -> list[Event]:
    with session_scope(links.engine) as s:
        return list(s.exec(select(Event).where(Event.ping_id == ping_id, Event.kind == "ping.acked")).all())


def test_the_invitation_goes_to_the_contact_points_mailbox_with_the_ping_page(links: Links) -> None:
    invite = links.invite_of("XA-ONE")
    assert invite.to == "desk@xa-one.example"
    assert invite.ping.address == "https://video.xa-one.example/desk"  # the endpoint tested stays the video one
    assert "/ack/" in invite.ping.body
    assert links.pings("video")["XA-ONE"].provider_ref == guest_identity(
        JITSI_SECRET, links.run_id, links.pings("video")["XA-ONE"].id or 0, "XA-ONE")


def test_the_join_link_is_a_jwt_for_the_runs_room_with_the_contact_points_identity(links: Links) -> None:
    url = links.join_url("XA-ONE")
    room = room_name(JITSI_SECRET, links.run_id)
    assert url.startswith(f"https://meet.commtest.example/{room}?jwt=")
    claims = jwt.decode(url.split("jwt=", 1)[1], JITSI_SECRET, algorithms=["HS256"], audience="jitsi",
                        options={"verify_exp": False})
    ping = links.pings("video")["XA-ONE"]
    assert claims["iss"] == "commtest" and claims["sub"] == "meet.commtest.example" and claims["room"] == room
    assert claims["context"]["user"]["id"] == ping.provider_ref
    assert claims["exp"] == int((ping.deadline_at.replace(tzinfo=UTC) + timedelta(hours=1)).timestamp())


def test_the_page_of_a_video_ping_offers_the_join_link_and_no_confirm_button(links: Links) -> None:
    page = links.client.get(links.invite_of("XA-ONE").ping.ack_url.replace("http://testserver", "") + "?lang=en")
    assert page.status_code == 200
    assert "Join the video room" in page.text and ">Confirm<" not in page.text
    assert "I am in the video room" not in page.text  # the bridge sees who joins


def test_a_join_by_the_pinged_organisation_within_the_deadline_acknowledges(links: Links) -> None:
    links.tick(minutes=3)
    links.jitsi.join(links.join_url("XA-ONE"))
    assert links.jitsi.flush(links.post_jitsi) == [200, 200]  # room created, occupant joined
    ping = links.pings("video")["XA-ONE"]
    assert ping.outcome == "acked" and ping.ack_method == "video-join"
    assert ping.ack_by == "Centre One desk (XA-ONE)"  # the name the bridge showed
    assert ping.acked_at is not None and ping.sent_at is not None
    assert (ping.acked_at - ping.sent_at) == timedelta(minutes=3)
    assert links.pings("video")["XB-TWO"].acked_at is None


def test_a_webhook_without_the_bearer_token_is_refused_and_changes_nothing(links: Links) -> None:
    links.jitsi.join(links.join_url("XA-ONE"))
    unsigned = links.jitsi.outbox[-1][1]
    for headers in ({}, {"Authorization": "Bearer not-the-token"}, {"Authorization": WEBHOOK_TOKEN}):
        r = links.client.post("/hooks/jitsi/events/occupant/joined", content=json.dumps(unsigned),
                              headers={"Content-Type": "application/json", **headers})
        assert r.status_code == 403
    assert links.pings("video")["XA-ONE"].acked_at is None


def test_a_webhook_signed_by_a_proxy_with_hmac_sha256_over_the_body_is_accepted_without_the_bearer(
        links: Links) -> None:
    links.tick(minutes=1)
    links.jitsi.signing_proxy = True  # a proxy in front of commtest signs the body and drops the bearer
    links.jitsi.join(links.join_url("XA-ONE"))
    sent = list(links.jitsi.outbox)
    assert links.jitsi.flush(links.post_jitsi) == [200, 200]
    assert links.pings("video")["XA-ONE"].ack_method == "video-join"
    path, payload = sent[-1]
    body = json.dumps(payload).encode()
    signed = {"Content-Type": "application/json", "X-Commtest-Signature": sign(WEBHOOK_TOKEN, body)}
    assert "Authorization" not in signed
    assert links.client.post(f"/hooks/jitsi{path}", content=body, headers=signed).status_code == 200


def test_a_wrong_or_foreign_signature_is_refused_even_with_the_right_bearer(links: Links) -> None:
    links.jitsi.join(links.join_url("XA-ONE"))
    path, payload = links.jitsi.outbox[-1]
    body = json.dumps(payload).encode()
    bearer = {"Content-Type": "application/json", "Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    tampered = body.replace(b"muc-occupant-joined", b"muc-occupant-joined ")
    for signature in (sign("another-secret", body), sign(WEBHOOK_TOKEN, tampered), "sha1=" + "0" * 40, ""):
        r = links.client.post(f"/hooks/jitsi{path}", content=body,
                              headers={**bearer, "X-Commtest-Signature": signature})
        assert r.status_code == 403, signature
    assert links.pings("video")["XA-ONE"].acked_at is None
    assert links.client.post(f"/hooks/jitsi{path}", content=body, headers=bearer).status_code == 200  # unsigned


def test_a_join_by_someone_else_does_not_count(links: Links) -> None:
    links.jitsi.allow_guests = True
    room = room_name(JITSI_SECRET, links.run_id)
    links.jitsi.join_as_guest(room, "Somebody without a link")
    # a token of ours, for a ping that is not in this run's room
    foreign = JitsiBridge("https://meet.commtest.example", "commtest", JITSI_SECRET, links.clock)
    other_room = foreign.room_for(links.run_id + 1)
    links.jitsi.join(foreign.join_link(other_room, foreign.guest(other_room, 99, "XA-ONE", "Other"),
                                       links.clock.now() + timedelta(hours=1)))
    codes = links.jitsi.flush(links.post_jitsi)
    assert codes and set(codes) == {200}
    assert all(p.acked_at is None for p in links.pings("video").values())


def test_a_forged_or_expired_link_is_not_admitted_by_the_bridge(links: Links) -> None:
    url = links.join_url("XA-ONE")
    forged = jwt.encode(jwt.decode(url.split("jwt=")[1], options={"verify_signature": False}),
                        "a-wrong-secret-that-is-long-enough-for-hs256", "HS256")
    with pytest.raises(JoinRefused):
        links.jitsi.join(url.split("jwt=")[0] + "jwt=" + forged)
    links.clock.advance(hours=2)
    with pytest.raises(JoinRefused):
        links.jitsi.join(url)


def test_a_duplicate_event_is_recorded_once(links: Links) -> None:
    links.tick(minutes=2)
    links.jitsi.join(links.join_url("XB-TWO"))
    batch = list(links.jitsi.outbox)
    links.jitsi.flush(links.post_jitsi)
    ping = links.pings("video")["XB-TWO"]
    first = ping.acked_at
    links.clock.advance(minutes=1)
    links.jitsi.outbox = batch  # event_sync retries the same events
    assert links.jitsi.flush(links.post_jitsi) == [200, 200]
    assert links.pings("video")["XB-TWO"].acked_at == first
    assert len(ack_events(links, ping.id or 0)) == 1


def test_a_leave_before_the_deadline_still_counts_the_join(links: Links) -> None:
    links.tick(minutes=4)
    occ = links.jitsi.join(links.join_url("XA-ONE"))
    links.clock.advance(seconds=30)
    links.jitsi.leave(occ)
    joined = links.jitsi.outbox[1]
    links.jitsi.outbox = [e for e in links.jitsi.outbox if e is not joined]  # the join's own event was lost
    links.jitsi.flush(links.post_jitsi)  # room created, occupant left, room destroyed
    links.tick(minutes=20)  # past the deadline
    ping = links.pings("video")["XA-ONE"]
    assert ping.outcome == "acked" and ping.ack_method == "video-join"
    assert ping.acked_at is not None and ping.sent_at is not None
    assert ping.acked_at - ping.sent_at == timedelta(minutes=4)  # when they joined, not when they left


def test_the_room_is_closed_when_the_run_ends(links: Links) -> None:
    links.jitsi.join(links.join_url("XA-ONE"))
    links.jitsi.flush(links.post_jitsi)
    assert links.video.open_room_runs() == {links.run_id}
    for _ in range(4):  # past every deadline: the run completes
        links.tick(minutes=10)
    assert links.runs.is_settled(links.run_id)
    assert links.jitsi.ended == [room_name(JITSI_SECRET, links.run_id)]
    assert links.video.open_room_runs() == set()
    links.jitsi.flush(links.post_jitsi)  # the occupant left when the room ended: the join stands
    assert links.pings("video")["XA-ONE"].outcome == "acked"


def test_an_event_sync_payload_names_the_join_by_room_occupant_and_time() -> None:
    now = datetime(2026, 4, 14, 9, 0, tzinfo=UTC)
    room = room_name(JITSI_SECRET, 5)
    ident = guest_identity(JITSI_SECRET, 5, 17, "LU-CNC")
    payload = {"event_name": "muc-occupant-joined", "room_name": room, "room_jid": f"{room}@conference.meet.example",
               "is_breakout": False, "active_occupants_count": 1,
               "occupant": {"occupant_jid": "a@meet.example/x", "joined_at": int(now.timestamp()) - 5,
                            "name": "CNC", "id": ident}}
    [report] = event_reports(payload, JITSI_SECRET, now)
    assert report.provider_ref == ident and report.method == "video-join"
    assert report.at == now - timedelta(seconds=5)
    assert report.extra["event_id"] == f"{room}@conference.meet.example/a@meet.example/x/{int(now.timestamp()) - 5}"
    assert parse_identity(JITSI_SECRET, ident) is not None
    assert parse_identity(JITSI_SECRET, ident.replace("LU-CNC", "BE-NCCN")) is None  # the MAC binds the organisation
    with pytest.raises(ValueError):
        event_reports({"hello": "world"}, JITSI_SECRET, now)


def test_a_payload_that_is_not_json_is_a_400(links: Links) -> None:
    r = links.client.post("/hooks/jitsi/events/occupant/joined", content=b"{not json",
                          headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"})
    assert r.status_code == 400
