"""Hand-built event logs with known answers, inserted the way the run engine records them."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from commtest import events as ev
from commtest.clock import UTC
from sqlmodel import select

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
    _closing: dict[int, str] = field(default_factory=dict)
    revision_id: int = 0
    source: str | None = None  # the playbook text, when not PLAYBOOK

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

    def playbook(self, source: str) -> LogBuilder:
        """Runs built from now on follow this revision of the playbook."""
        import hashlib

        with session_scope(self.engine) as s:
            rev = PlaybookRevision(
                playbook_id="benelux-quarterly", content_hash=hashlib.sha256(source.encode()).hexdigest(),
                title="Benelux quarterly communication test", owner="BENELUX-SG", source_text=source,
                created_at=datetime(2026, 1, 2, tzinfo=UTC),
            )
            s.add(rev)
            s.flush()
            self.revision_id = rev.id  # type: ignore[assignment]
        self.source = source
        return self

    def contact(self, org: str, suffix: str, endpoints: list[tuple[str, str]]) -> str:
        """One more crisis-desk contact point of ``org`` (key ``org/suffix``) with its endpoints."""
        key = f"{org}/{suffix}"
        with session_scope(self.engine) as s:
            fw = s.exec(select(FieldOfWork).where(FieldOfWork.code == "crisis-desk")).one()
            cp = ContactPoint(code=f"{org}/crisis-desk/{suffix}", organisation_id=self.orgs[org], field_id=fw.id,
                              name=f"{org} {suffix} desk", languages=["en"])
            s.add(cp)
            s.flush()
            self.cps[key] = cp.id  # type: ignore[assignment]
            for priority, (kind, address) in enumerate(endpoints, start=1):
                e = Endpoint(contact_point_id=cp.id, kind=kind, address=address, priority=priority)
                s.add(e)
                s.flush()
                self.endpoints[(key, kind)] = e.id  # type: ignore[assignment]
                self.addresses[(key, kind)] = address
        return key

    def prove_all(self, at: datetime) -> LogBuilder:
        """The directory records every endpoint as proven reachable at ``at`` (as an import would)."""
        with session_scope(self.engine) as s:
            for endpoint in s.exec(select(Endpoint)).all():
                endpoint.verified_at = at
                s.add(endpoint)
        return self

    def close(self, run_id: int, status: str = "completed") -> int:
        """Close the run as the engine does: its status, ``run.completed`` and its facts."""
        from commtest.facts import facts_of_run, write_run_facts
        from reports.playbook_facts import playbook_facts

        with session_scope(self.engine) as s:
            run = s.get(TestRun, run_id)
            assert run is not None
            run.status = status
            run.finished_at = run.finished_at or (run.fire_at + timedelta(hours=1))
            s.add(run)
            s.flush()
            ev.record_event(s, at=run.finished_at, actor="daemon:test",
                            kind=ev.RUN_COMPLETED if status == "completed" else ev.RUN_ABORTED, run_id=run_id)
            rules = playbook_facts(PLAYBOOK if self.source is None else self.source).rules
            write_run_facts(s, facts_of_run(s.connection(), run_id, rules), run.fire_at)
        return run_id

    def run(self, fire_at: datetime, status: str = "completed") -> int:
        with session_scope(self.engine) as s:
            run = TestRun(
                playbook_id="benelux-quarterly", revision_id=self.revision_id, dedupe_key=f"t@{fire_at.isoformat()}",
                trigger="schedule", status="running", fire_at=fire_at, started_at=fire_at,
            )
            s.add(run)
            s.flush()
            ev.record_event(s, at=fire_at, actor="daemon:test", kind=ev.RUN_STARTED, run_id=run.id, started_by="test")
            run_id: int = run.id  # type: ignore[assignment]
        self._closing[run_id] = status
        return run_id

    def done(self) -> None:
        """Close every run built with ``run(..., status="completed")`` (call after adding its pings)."""
        for run_id, status in list(self._closing.items()):
            if status in ("completed", "aborted"):
                self.close(run_id, status)
            self._closing.pop(run_id)

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
        contact: str | None = None,
        delivered_after_s: float | None = 1,
        simulated: bool = False,
        sent: bool = True,
        reason: str = "",
    ) -> int:
        """A ping sent at ``sent_at``; acknowledged ``response_s`` seconds after it was sent, or
        settled as ``outcome``. ``contact`` names another contact point of ``org`` (see
        ``contact``); ``sent=False`` is an attempt never sent (cancelled, or ``outcome`` with
        ``reason``: ``template_error``, ``provider_failure``)."""
        unsent_outcome = outcome or "cancelled"
        outcome = outcome or ("acked" if response_s is not None else "delivered_no_ack")
        key = contact or org
        with session_scope(self.engine) as s:
            endpoint_id = self.endpoints.get((key, channel))
            ping = Ping(
                run_id=run_id, contact_point_id=self.cps[key], endpoint_id=endpoint_id, organisation_code=org,
                channel=channel, step="mail" if channel == "email" else "call", attempt=attempt,
                state="acked" if response_s is not None else "expired", outcome=outcome,
                due_at=sent_at, address=self.addresses.get((key, channel), ""), simulated=simulated,
            )
            s.add(ping)
            s.flush()
            common = dict(run_id=run_id, ping_id=ping.id, organisation_code=org, channel=channel, actor="daemon:test")
            ev.record_event(s, at=sent_at - timedelta(seconds=5), kind=ev.PING_PLANNED, step=ping.step, attempt=attempt,
                            contact_point=f"{key}/crisis-desk" if contact is None else key, field="crisis-desk",
                            due_at=sent_at, endpoint_id=endpoint_id, **common)
            if not sent:
                ping.state, ping.outcome = ("cancelled" if unsent_outcome == "cancelled" else "failed"), unsent_outcome
                s.add(ping)
                ev.record_event(s, at=sent_at, kind=ev.PING_SETTLED, outcome=unsent_outcome,
                                **({"reason": reason} if reason else {}), **common)
                return ping.id  # type: ignore[return-value]
            ev.record_event(s, at=sent_at, kind=ev.PING_SENT, provider="sandbox" if simulated else "smtp",
                            simulated=simulated, deadline_at=sent_at + timedelta(minutes=15), **common)
            if delivered_after_s is not None:
                ev.record_event(s, at=sent_at + timedelta(seconds=delivered_after_s), kind=ev.PING_DELIVERED,
                                status=delivered_status, **common)
            response_ms = None
            if response_s is not None:
                response_ms = int(response_s * 1000)
                acked = sent_at + timedelta(seconds=response_s)
                ev.record_event(s, at=acked, kind=ev.PING_ACKED, response_ms=response_ms, method="link", by="duty officer",
                                suspicious=suspicious, late=outcome == "acked_late", simulated=simulated, **common)
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
