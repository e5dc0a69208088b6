"""A run with e-mail, video and CAP steps against the local fakes (fake Jitsi, fake
BigBlueButton, fake CAP partner), driven in process with a frozen clock."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from channels.base import ChannelReport, OutgoingPing, SendResult
from channels.cap.channel import CapChannel
from channels.cap.fake_partner import FakeCapPartner
from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxScript
from channels.video.bigbluebutton import bigbluebutton_channel
from channels.video.channel import VideoChannel
from channels.video.fake_bigbluebutton import FakeBigBlueButton
from channels.video.fake_jitsi import FakeJitsi
from channels.video.invite import VideoInvite
from channels.video.jitsi import jitsi_channel
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import Endpoint, Ping
from commtest.settings import Settings, load_settings
from scheduler.engine import RunEngine
from tests.scheduler.seed import seed_directory, store_playbook
from web.app import create_app

JITSI_SECRET = "fictional-jitsi-app-secret-of-32-bytes-or-more"
WEBHOOK_TOKEN = "fictional-event-sync-token"
BBB_SECRET = "639259d4-9dd8-4b25-bf01-95f9567eaf4b"  # the BigBlueButton documentation's example secret
CAP_SECRET = "fictional-cap-shared-secret"
CAP_ENDPOINT = "https://lcms.xb-two.example/cap/inbox"

PLAYBOOK = """
id: links-playbook
title: Links playbook
owner: XA-COORD
timezone: Europe/Brussels
default_language: en
participants:
  - organisation: XA-ONE
    fields: [crisis-desk]
  - organisation: XB-TWO
    fields: [crisis-desk]
steps:
  - id: email
    channel: email
    template: ping
    ack_deadline: 15m
  - id: video
    channel: video
    template: video
    ack_deadline: 20m
  - id: cap
    channel: cap
    template: ping
    ack_deadline: 10m
targets: {email: 15m, video: 20m, cap: 10m}
templates:
  ping:
    en:
      subject: "Communication test {{ run.id }}"
      body: "Please confirm: {{ ack_url }} before {{ deadline }}."
  video:
    en:
      subject: "Communication test {{ run.id }}: please join the video room"
      body: "Please join the video room within {{ deadline_minutes }} minutes: {{ ack_url }}"
"""


class Recorder:
    """An e-mail provider that keeps the outgoing pings (with their raw tokens)."""

    kind, provider = "email", "recorder"
    simulated = True

    def __init__(self) -> None:
        self.sent: list[OutgoingPing] = []

    def send(self, ping: OutgoingPing) -> SendResult:
        self.sent.append(ping)
        return SendResult(provider_ref=f"<ping-{ping.ping_id}.rec@coord.example>")

    def poll_reports(self, now: Any) -> list[ChannelReport]:
        return []

    def close(self) -> None:
        pass


class InviteBox:
    """A courier that keeps the video invitations instead of mailing them."""

    def __init__(self) -> None:
        self.invites: list[VideoInvite] = []

    def deliver(self, invite: VideoInvite) -> str:
        _ = invite.to  # refuses a ping without an invitation address, as the SMTP courier does
        self.invites.append(invite)
        return f"<video-invite-{invite.ping.ping_id}@coord.example>"


def link_settings(engine: Engine, **extra: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=engine.url.render_as_string(hide_password=False), secret_key="fictional-test-secret",
        dispatch_workers=2, public_base_url="http://testserver",
        jitsi_url="https://meet.commtest.example", jitsi_app_secret=JITSI_SECRET, jitsi_webhook_token=WEBHOOK_TOKEN,
        jitsi_end_meeting_url="https://meet.commtest.example/end-meeting",
        bigbluebutton_url="https://bbb.commtest.example/bigbluebutton/api", bigbluebutton_secret=BBB_SECRET,
        cap_partners={"xb-lcms": {"endpoint": CAP_ENDPOINT, "address": "lcms@xb-two.example"}},
        cap_secrets={"xb-lcms": CAP_SECRET},
    )
    values.update(extra)
    return load_settings(**values)


def seed_links(engine: Engine) -> dict[str, int]:
    ids = seed_directory(engine)
    with session_scope(engine) as s:
        for code, cp_id in ids.items():
            s.add(Endpoint(contact_point_id=cp_id, kind="video", address=f"https://video.{code.lower()}.example/desk"))
        s.add(Endpoint(contact_point_id=ids["XB-TWO"], kind="cap", address=CAP_ENDPOINT))
    store_playbook(engine, PLAYBOOK, "links-playbook")
    return ids


@dataclass
class Links:
    engine: Engine
    clock: FrozenClock
    settings: Settings
    client: TestClient  # the web app, in process
    runs: RunEngine
    mail: Recorder
    invites: InviteBox
    video: VideoChannel
    cap: CapChannel
    jitsi: FakeJitsi
    bbb: FakeBigBlueButton
    partner: FakeCapPartner
    run_id: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def tick(self, **advance: float) -> None:
        if advance:
            self.clock.advance(**advance)
        self.runs.tick()

    def post_jitsi(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        return self.client.post(f"/hooks/jitsi{path}", content=body, headers=headers).status_code

    def post_cap(self, body: bytes, headers: dict[str, str]) -> int:
        return self.client.post("/hooks/cap/xb-lcms", content=body, headers=headers).status_code

    def pings(self, channel: str | None = None) -> dict[str, Ping]:
        with session_scope(self.engine) as s:
            q = select(Ping).where(Ping.run_id == self.run_id)
            if channel:
                q = q.where(Ping.channel == channel)
            return {p.organisation_code: p for p in s.exec(q.order_by(col(Ping.id))).all()}

    def invite_of(self, organisation_code: str) -> VideoInvite:
        return next(i for i in self.invites.invites if i.ping.organisation_code == organisation_code)

    def join_url(self, organisation_code: str) -> str:
        """What the officer's browser finds on the ping's page: the personal join link."""
        import re

        page = self.client.get(self.invite_of(organisation_code).ping.ack_url.replace("http://testserver", ""))
        m = re.search(r'class="join" href="([^"]+)"', page.text)
        assert m, page.text
        return m.group(1).replace("&amp;", "&")

    def close(self) -> None:
        self.runs.close()
        self.client.close()


def start_links(engine: Engine, clock: FrozenClock, *, bridge: str = "jitsi", **extra: Any) -> Links:
    settings = link_settings(engine, **extra)
    seed_links(engine)
    jitsi = FakeJitsi(JITSI_SECRET, clock, webhook_token=WEBHOOK_TOKEN)
    bbb = FakeBigBlueButton(BBB_SECRET, clock)
    partner = FakeCapPartner("xb-lcms", CAP_SECRET, clock, delay=timedelta(seconds=40), sender="lcms@xb-two.example")
    invites = InviteBox()
    if bridge == "jitsi":
        video = jitsi_channel(settings, clock, client=httpx.Client(transport=httpx.MockTransport(jitsi.handle_request)),
                              courier=invites, simulated=True)
    else:
        video = bigbluebutton_channel(settings, clock, courier=invites, simulated=True,
                                      client=httpx.Client(transport=httpx.MockTransport(bbb.handle_request)))
    cap = CapChannel(settings, clock, client=httpx.Client(transport=httpx.MockTransport(partner.handle_request)),
                     simulated=True)
    mail = Recorder()
    quiet = SandboxScript(default=Rule("never"))
    chans: dict[str, Any] = {k: SandboxChannel(k, clock, quiet) for k in ("voice", "sms")}
    chans.update(email=mail, video=video, cap=cap)
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, chans), actor="test")
    client = TestClient(create_app(settings, engine, clock), base_url="http://testserver")
    links = Links(engine, clock, settings, client, runs, mail, invites, video, cap, jitsi, bbb, partner)
    links.run_id = runs.create_run("links-playbook")
    runs.start_run(links.run_id)
    runs.tick()
    return links
