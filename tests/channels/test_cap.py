"""CAP 1.2: our alert is valid CAP and signed; the partner's Ack acknowledges; malformed XML,
entity tricks, a wrong schema, another alert's Ack and a bad signature change nothing."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.engine import Engine

from channels.base import OutgoingPing
from channels.cap.channel import CapChannel
from channels.cap.message import CapRefused, build_ack, read_cap
from channels.cap.signing import HEADER, sign
from commtest.clock import UTC, FrozenClock
from commtest.errors import ChannelError
from commtest.settings import load_settings
from tests.channels.video_cap_support import CAP_ENDPOINT, CAP_SECRET, Links, start_links

NOW = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&xxe;</identifier></alert>"""


@pytest.fixture
def links(engine: Engine, clock: FrozenClock) -> Iterator[Links]:
    lk = start_links(engine, clock)
    yield lk
    lk.close()


def signed(body: bytes, secret: str = CAP_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/xml", HEADER: sign(secret, body)}


def our_alert(links: Links) -> tuple[str, str, str]:
    alert = links.partner.received[0]
    return alert.sender, alert.identifier, alert.sent


def ack_body(links: Links, references: list[tuple[str, str, str]]) -> bytes:
    return build_ack(identifier="lcms-ack-1", sender="lcms@xb-two.example", sent=links.clock.now(),
                     addresses="commtest@commtest.example", references=references)


def test_the_alert_is_valid_cap_1_2_with_status_test_and_names_the_run_and_ping(links: Links) -> None:
    [alert] = links.partner.received  # the fake read it against the OASIS schema and checked our signature
    ping = links.pings("cap")["XB-TWO"]
    assert alert.status == "Test" and alert.msg_type == "Alert"
    assert alert.identifier == ping.provider_ref
    assert alert.identifier.startswith(f"commtest.xb-lcms.{links.run_id}.{ping.id}.")
    assert alert.sent.endswith("-00:00")  # CAP writes UTC as -00:00, never Z
    assert ping.state == "delivered"  # the partner's platform took it; the Ack is the answer
    assert "XA-ONE" not in links.pings("cap")  # no CAP endpoint there: a gap, not a ping


def test_the_partners_ack_after_a_delay_acknowledges(links: Links) -> None:
    links.clock.advance(seconds=30)
    assert links.partner.flush(links.clock.now(), links.post_cap) == []  # not yet
    links.clock.advance(seconds=15)
    assert links.partner.flush(links.clock.now(), links.post_cap) == [200]
    ping = links.pings("cap")["XB-TWO"]
    assert ping.outcome == "acked" and ping.ack_method == "cap-ack" and ping.ack_by == "lcms@xb-two.example"
    assert ping.acked_at is not None and ping.sent_at is not None
    assert ping.acked_at - ping.sent_at == timedelta(seconds=45)


def test_a_repeated_ack_is_answered_again_and_changes_nothing(links: Links) -> None:
    body = ack_body(links, [our_alert(links)])
    assert links.post_cap(body, signed(body)) == 200
    first = links.pings("cap")["XB-TWO"].acked_at
    links.clock.advance(minutes=1)
    assert links.post_cap(body, signed(body)) == 200
    assert links.pings("cap")["XB-TWO"].acked_at == first


def test_an_ack_for_another_alert_is_refused(links: Links) -> None:
    sender, ident, sent = our_alert(links)
    for refs in ([(sender, "somebody-elses-alert", sent)],
                 [("someone@else.example", ident, sent)],
                 [(sender, ident.replace("xb-lcms", "be-icms"), sent)]):
        body = ack_body(links, refs)
        assert links.client.post("/hooks/cap/xb-lcms", content=body, headers=signed(body)).status_code == 422
    # ours in shape, but never sent: unknown to the database
    body = ack_body(links, [(sender, f"commtest.xb-lcms.{links.run_id}.99999.abcdefabcdef", sent)])
    assert links.client.post("/hooks/cap/xb-lcms", content=body, headers=signed(body)).status_code == 404
    assert links.pings("cap")["XB-TWO"].acked_at is None


def test_a_bad_or_missing_signature_is_refused_before_parsing(links: Links) -> None:
    body = ack_body(links, [our_alert(links)])
    for headers in ({}, signed(body, "not-the-secret"), {HEADER: "sha256=" + "0" * 64}, signed(body + b" ")):
        assert links.client.post("/hooks/cap/xb-lcms", content=body, headers=headers).status_code == 403
    assert links.pings("cap")["XB-TWO"].acked_at is None


def test_an_unknown_partner_is_a_404(links: Links) -> None:
    body = ack_body(links, [our_alert(links)])
    assert links.client.post("/hooks/cap/nobody", content=body, headers=signed(body)).status_code == 404


@pytest.mark.parametrize("body, status", [
    (b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x", 400),  # malformed
    (b"not xml at all", 400),
    (BILLION_LAUGHS, 400),  # entity expansion refused, never expanded
    (EXTERNAL_ENTITY, 400),  # external entity refused, nothing fetched
    (b"<ack xmlns='urn:example:not-cap'/>", 422),  # not CAP
    (b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>x</identifier></alert>", 422),  # schema
], ids=["malformed", "not-xml", "billion-laughs", "external-entity", "other-namespace", "schema"])
def test_a_signed_but_hostile_or_broken_message_is_refused_and_changes_nothing(links: Links, body: bytes,
                                                                              status: int) -> None:
    r = links.client.post("/hooks/cap/xb-lcms", content=body, headers=signed(body))
    assert r.status_code == status, r.text
    assert links.pings("cap")["XB-TWO"].acked_at is None


def test_an_alert_or_an_actual_message_is_not_an_ack(links: Links) -> None:
    body = links.partner.ack_for(links.partner.received[0]).replace(b"<msgType>Ack</msgType>",
                                                                  b"<msgType>Alert</msgType>")
    assert links.client.post("/hooks/cap/xb-lcms", content=body, headers=signed(body)).status_code == 422
    body = links.partner.ack_for(links.partner.received[0]).replace(b"<status>Test</status>",
                                                                  b"<status>Actual</status>")
    assert links.client.post("/hooks/cap/xb-lcms", content=body, headers=signed(body)).status_code == 422


def test_a_body_over_the_limit_is_refused_before_it_is_read(links: Links) -> None:
    big = b"<a>" + b"x" * (links.settings.cap_max_body_bytes + 1) + b"</a>"
    r = links.client.post("/hooks/cap/xb-lcms", content=big, headers=signed(big))
    assert r.status_code == 413


def test_xml_is_read_without_dtds_or_entities() -> None:
    for body in (BILLION_LAUGHS, EXTERNAL_ENTITY):
        with pytest.raises(CapRefused) as err:
            read_cap(body)
        assert err.value.status == 400 and err.value.code == "cap-entities"


def ping_to(address: str) -> OutgoingPing:
    return OutgoingPing(ping_id=3, run_id=2, channel="cap", address=address, language="en", subject="Test",
                        body="Communication test", html=None, ack_url="", ack_code="", token="t" * 43,
                        deadline_at=NOW + timedelta(minutes=10), organisation_code="XB-TWO", contact_name="LCMS")


def channel_answering(handler: object) -> CapChannel:
    settings = load_settings(cap_partners={"xb-lcms": {"endpoint": CAP_ENDPOINT}}, cap_secrets={"xb-lcms": CAP_SECRET})
    return CapChannel(settings, FrozenClock(NOW), client=httpx.Client(transport=httpx.MockTransport(handler)))  # type: ignore[arg-type]


def test_the_partners_http_answer_decides_what_a_failed_send_means() -> None:
    for status, permanent, code in ((404, True, "cap-no-inbox"), (401, False, "cap-auth"), (503, False, "cap-503")):
        ch = channel_answering(lambda r, s=status: httpx.Response(s))
        with pytest.raises(ChannelError) as err:
            ch.send(ping_to(CAP_ENDPOINT))
        assert (err.value.permanent, err.value.code, err.value.ambiguous) == (permanent, code, False)


def test_no_answer_after_the_alert_went_out_is_ambiguous_and_never_resent() -> None:
    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read timed out", request=request)

    with pytest.raises(ChannelError) as err:
        channel_answering(timeout).send(ping_to(CAP_ENDPOINT))
    assert err.value.ambiguous and not err.value.permanent

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(ChannelError) as err:
        channel_answering(refused).send(ping_to(CAP_ENDPOINT))
    assert not err.value.ambiguous and err.value.code == "cap-unreachable"


def test_an_endpoint_without_a_configured_partner_says_which_setting_to_set() -> None:
    with pytest.raises(ChannelError) as err:
        channel_answering(lambda r: httpx.Response(202)).send(ping_to("https://elsewhere.example/cap"))
    assert "COMMTEST_CAP_PARTNERS" in err.value.message


def test_the_alert_is_signed_with_the_partners_secret() -> None:
    seen: list[httpx.Request] = []

    def keep(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202)

    result = channel_answering(keep).send(ping_to(CAP_ENDPOINT))
    body = seen[0].read()
    assert seen[0].headers[HEADER] == sign(CAP_SECRET, body)
    assert read_cap(body).identifier == result.provider_ref and result.delivered
