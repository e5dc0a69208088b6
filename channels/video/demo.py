"""The demo's video and CAP links, wired in one place so that ``commtest demo`` changes little.

Everything speaks the real protocols over loopback: a fake Jitsi (JWT check, event_sync
webhooks with their bearer token, end-meeting) and a fake CAP partner each on a port of
their own; the Jitsi provider and the CAP provider are the real ones, pointed at them
(hence simulated). Simulated duty officers read the video invitations from the demo's
mailbox, open the ping's page, follow its join link after a scripted delay, and leave again.
"""
from __future__ import annotations

import re
import secrets
import socket
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from channels.cap.channel import CapChannel
from channels.cap.demo import PARTNER, PartnerPump, write_demo_playbook
from channels.cap.fake_partner import FakeCapPartner
from channels.fake_http import asgi_app
from channels.video.fake_jitsi import FakeJitsi, Occupant
from channels.video.invite import HEADER
from channels.video.jitsi import jitsi_channel
from commtest.clock import Clock
from commtest.settings import Settings

SUBJECT = "meet.commtest.example"
# When each fictional desk joins after its invitation (simulated time), and how long it stays.
VIDEO_OFFICERS: dict[str, tuple[timedelta, timedelta]] = {
    "permanence@nccn.example": (timedelta(minutes=3), timedelta(minutes=20)),
    "dienstdoende@ncc.example": (timedelta(minutes=5), timedelta(minutes=2)),  # leaves early: the join still counts
    "permanence@cnc.example": (timedelta(minutes=24), timedelta(minutes=5)),  # after its 20-minute deadline: late
    "lagedienst@im-nrw.example": (timedelta(minutes=8), timedelta(minutes=10)),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(handler: Any, port: int) -> Any:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(asgi_app(handler), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    threading.Thread(target=server.run, name=f"fake-{port}", daemon=True).start()
    return server


@dataclass
class _Guest:
    to: str
    invited_at: datetime
    page_url: str
    occupant: Occupant | None = None
    left: bool = False


@dataclass
class DemoLinks:
    settings: Settings
    clock: Clock
    jitsi: FakeJitsi
    partner: FakeCapPartner
    playbook_id: str
    log: list[str] = field(default_factory=list)
    _servers: list[Any] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _pump: PartnerPump | None = None

    @classmethod
    def start(cls, settings: Settings, clock: Clock, workdir: Path, shipped_playbook: Path) -> DemoLinks:
        """Start the fakes and return the settings that point the real providers at them."""
        jport, cport = _free_port(), _free_port()
        jitsi_secret, token, cap_secret = (secrets.token_urlsafe(32) for _ in range(3))
        playbook_id = write_demo_playbook(shipped_playbook, workdir / "playbooks")
        settings = settings.model_copy(update={
            "playbook_dir": workdir / "playbooks",
            "jitsi_url": f"http://127.0.0.1:{jport}", "jitsi_subject": SUBJECT,
            "jitsi_app_secret": _secret(jitsi_secret), "jitsi_webhook_token": _secret(token),
            "jitsi_end_meeting_url": f"http://127.0.0.1:{jport}/end-meeting",
            "cap_partners": {PARTNER: _partner(f"http://127.0.0.1:{cport}/cap/inbox")},
            "cap_secrets": {PARTNER: _secret(cap_secret)},
        })
        jitsi = FakeJitsi(jitsi_secret, clock, subject=SUBJECT, webhook_token=token)
        partner = FakeCapPartner(PARTNER, cap_secret, clock, delay=timedelta(seconds=90), sender="lcms@ncc.example")
        links = cls(settings, clock, jitsi, partner, playbook_id)
        links._servers = [_serve(jitsi.handle_request, jport), _serve(partner.handle_request, cport)]
        return links

    def channels(self) -> dict[str, Any]:
        """The real Jitsi and CAP providers, pointed at the fakes: simulated."""
        return {"video": jitsi_channel(self.settings, self.clock, simulated=True),
                "cap": CapChannel(self.settings, self.clock, simulated=True)}

    def run(self, mail: Any) -> None:
        """Start the simulated video officers (reading ``mail``) and the webhook pumps."""
        base = self.settings.public_base_url
        self._pump = PartnerPump(self.partner, f"{base}/hooks/cap/{PARTNER}", self.clock, self.log.append)
        self._pump.stop = self._stop
        threading.Thread(target=self._pump.run, name="cap-partner", daemon=True).start()
        threading.Thread(target=self._officers, args=(mail, base), name="video-officers", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()
        for room in self.jitsi.ended:
            self.log.append(f"the bridge: video room {room} ended when the run ended")
        for server in self._servers:
            server.should_exit = True

    # -- the simulated video officers and event_sync ---------------------------------
    def _officers(self, mail: Any, base: str) -> None:
        guests: dict[str, _Guest] = {}
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    self._step(mail, client, guests, base)
                except Exception as exc:  # keep the officers alive, and say what went wrong
                    self.log.append(f"(video officer simulation error, retrying: {type(exc).__name__}: {exc})")
                self._stop.wait(0.1)

    def _step(self, mail: Any, client: httpx.Client, guests: dict[str, _Guest], base: str) -> None:
        from email.utils import parsedate_to_datetime

        for msg in mail.messages():
            key = str(msg.get("Message-ID"))
            to = str(msg.get("To", "")).strip().lower()
            if key in guests or HEADER not in msg or to not in VIDEO_OFFICERS:
                continue
            m = re.search(r"https?://\S+/ack/[A-Za-z0-9_-]+", msg.get_content())
            if m:
                guests[key] = _Guest(to, parsedate_to_datetime(str(msg["Date"])), m.group(0))
        now = self.clock.now()
        for g in guests.values():
            after, stay = VIDEO_OFFICERS[g.to]
            if g.occupant is None and not g.left and now - g.invited_at >= after:
                page = client.get(g.page_url)
                link = re.search(r'class="join" href="([^"]+)"', page.text)
                if not link:
                    continue
                url = link.group(1).replace("&amp;", "&")
                r = client.get(url)  # the officer's browser opens the join link: the bridge checks its token
                g.occupant = self.jitsi.by_token.get(url.split("jwt=", 1)[-1])
                if r.status_code != 200 or g.occupant is None:
                    self.log.append(f"{g.to}: the video room refused the link (HTTP {r.status_code})")
                    g.left = True
                    continue
                self.log.append(f"{g.to}: opened the page, followed the join link and entered the video room "
                                f"(HTTP {r.status_code})")
            elif g.occupant is not None and not g.left and now - g.invited_at >= after + stay:
                self.jitsi.leave(g.occupant)
                g.left = True
        self.jitsi.flush(lambda path, body, headers: client.post(f"{base}/hooks/jitsi{path}", content=body,
                                                                 headers=headers).status_code)

def _secret(value: str) -> Any:
    from pydantic import SecretStr

    return SecretStr(value)


def _partner(url: str) -> Any:
    from commtest.settings import CapPartner

    return CapPartner(endpoint="https://lcms.ncc.example/cap/inbox", url=url, address="lcms@ncc.example")
