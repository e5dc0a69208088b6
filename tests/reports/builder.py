"""Hand-built event logs with known answers, inserted the way the run engine records them."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from commtest import events as ev
from commtest.clock import UTC
from commtest.db import session_scope
from commtest.models import (
    ContactPoint,
    Endpoint,
    FieldOfWork,
    Organisation,
    Ping,
    Playbook,
    PlaybookRevision,
    TestRun,
)

PLAYBOOK = """\
id: benelux-quarterly
title: Benelux quarterly communication test
owner: BENELUX-SG
timezone: Europe/Brussels
participants:
  - organisation: BE-NCCN
    fields: [crisis-desk]
  - organisation: NL-NCC
    fields: [crisis-desk]
  - organisation: LU-CNC
    fields: [crisis-desk]
steps:
  - id: mail
    channel: email
    template: ping
    ack_deadline: 30m
  - id: call
    channel: voice
    template: ping
    ack_deadline: 10m
targets:
  email: 15m
  voice: 5m
templates:
  ping:
    en:
      subject: Communication test
      body: Please acknowledge.
"""

ORGS = {
    "BE-NCCN": ("Nationaal Crisiscentrum / Centre de Crise National", ["nl", "fr", "de"]),
    "NL-NCC": ("Nationaal CrisisCentrum", ["nl"]),
    "LU-CNC": ("Centre national de crise", ["fr", "de", "lb"]),
}


@dataclass
class LogBuilder:
    engine: Engine
    orgs: dict[str, int] = field(default_factory=dict)
    cps: dict[str, int] = field(default_factory=dict)
    endpoints: dict[tuple[str, str], int] = field(default_factory=dict)
    addresses: dict[tuple[str, str], str] = field(default_factory=dict)
    revision_id: int = 0

    def directory(self, endpoints: dict[str, list[tuple[str, str]]] | None = None) -> LogBuilder:
        """Orgs, one crisis-desk contact point each, and endpoints {org: [(kind, address)]}."""
        endpoints = endpoints or {
            "BE-NCCN": [("email", "desk@nccn.example"), ("voice", "+447700900101")],
            "NL-NCC": [("email", "desk@ncc.example"), ("voice", "+447700900102")],
            "LU-CNC": [("email", "desk@cnc.example")],  # no phone: "no endpoint" on voice
        }
        with session_scope(self.engine) as s:
            fw = FieldOfWork(code="crisis-desk", name="Crisis desk", names={"nl": "Crisisdesk"})
            s.add(fw)
            s.flush()
            for code, (name, langs) in ORGS.items():
                org = Organisation(code=code, name=name, country=code[:2], languages=langs, timezone="Europe/Brussels")
                s.add(org)
                s.flush()
                cp = ContactPoint(
                    code=f"{code}/crisis-desk", organisation_id=org.id, field_id=fw.id, name=f"{code} duty desk",
                    languages=langs[:1],
                )
                s.add(cp)
                s.flush()
                self.orgs[code], self.cps[code] = org.id, cp.id  # type: ignore[assignment]
                for priority, (kind, address) in enumerate(endpoints.get(code, []), start=1):
                    e = Endpoint(contact_point_id=cp.id, kind=kind, address=address, priority=priority)
                    s.add(e)
                    s.flush()
                    self.endpoints[(code, kind)] = e.id  # type: ignore[assignment]
                    self.addresses[(code, kind)] = address
            s.add(Playbook(id="benelux-quarterly"))
            s.flush()
            rev = PlaybookRevision(
                playbook_id="benelux-quarterly", content_hash="0" * 64, title="Benelux quarterly communication test",
                owner="BENELUX-SG", source_text=PLAYBOOK, created_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
            s.add(rev)
            s.flush()
            self.revision_id = rev.id  # type: ignore[assignment]
        return self

    def run(self, fire_at: datetime, status: str = "completed") -> int:
        with session_scope(self.engine) as s:
            run = TestRun(
                playbook_id="benelux-quarterly", revision_id=self.revision_id, dedupe_key=f"t@{fire_at.isoformat()}",
                trigger="schedule", status=status, fire_at=fire_at, started_at=fire_at,
                finished_at=fire_at + timedelta(hours=1) if status == "completed" else None,
            )
            s.add(run)
            s.flush()
            ev.record_event(s, at=fire_at, actor="daemon:test", kind=ev.RUN_STARTED, run_id=run.id, started_by="test")
            return run.id  # type: ignore[return-value]

    def ping(
        self,
        run_id: int,
        org: str,
        channel: str,
        *,
        sent_at: datetime,
        response_s: float | None = None,
        outcome: str | None = None,
        attempt: int = 1,
        suspicious: bool = False,
        delivered_status: str = "delivered",
        extra: list[tuple[str, dict[str, Any]]] = (),  # type: ignore[assignment]
    ) -> int:
        """A ping sent at ``sent_at``; acknowledged after ``response_s`` seconds, or settled as ``outcome``."""
        outcome = outcome or ("acked" if response_s is not None else "delivered_no_ack")
        with session_scope(self.engine) as s:
            endpoint_id = self.endpoints.get((org, channel))
            ping = Ping(
                run_id=run_id, contact_point_id=self.cps[org], endpoint_id=endpoint_id, organisation_code=org,
                channel=channel, step="mail" if channel == "email" else "call", attempt=attempt,
                state="acked" if response_s is not None else "expired", outcome=outcome,
                due_at=sent_at, address=self.addresses.get((org, channel), ""),
            )
            s.add(ping)
            s.flush()
            common = dict(run_id=run_id, ping_id=ping.id, organisation_code=org, channel=channel, actor="daemon:test")
            ev.record_event(s, at=sent_at - timedelta(seconds=5), kind=ev.PING_PLANNED, step=ping.step, attempt=attempt,
                            contact_point=f"{org}/crisis-desk", due_at=sent_at, endpoint_id=endpoint_id, **common)
            ev.record_event(s, at=sent_at, kind=ev.PING_SENT, provider="sandbox", **common)
            ev.record_event(s, at=sent_at + timedelta(seconds=1), kind=ev.PING_DELIVERED, status=delivered_status, **common)
            response_ms = None
            if response_s is not None:
                response_ms = int(response_s * 1000)
                acked = sent_at + timedelta(seconds=response_s)
                ev.record_event(s, at=acked, kind=ev.PING_ACKED, response_ms=response_ms, method="link", by="duty officer",
                                suspicious=suspicious, late=outcome == "acked_late", **common)
                settled_at = acked
            else:
                settled_at = sent_at + timedelta(minutes=30)
            for kind, data in extra:
                ev.record_event(s, at=sent_at + timedelta(seconds=2), kind=kind, **common, **data)
            ev.record_event(s, at=settled_at, kind=ev.PING_SETTLED, outcome=outcome, response_ms=response_ms, **common)
            return ping.id  # type: ignore[return-value]

    def event(self, at: datetime, kind: str, run_id: int | None = None, **data: Any) -> None:
        with session_scope(self.engine) as s:
            ev.record_event(s, at=at, actor="daemon:test", kind=kind, run_id=run_id, **data)
