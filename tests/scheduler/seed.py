"""A small fictional directory and playbook written straight into the tables, for engine tests."""
from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy.engine import Engine

from commtest.clock import UTC
from commtest.db import session_scope
from commtest.models import ContactPoint, Endpoint, FieldOfWork, Organisation, Playbook, PlaybookRevision

PLAYBOOK = """
id: test-playbook
title: Test playbook
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
    retries: 1
    retry_interval: 5m
  - id: voice
    channel: voice
    template: ping
    ack_deadline: 5m
    escalate: {step: sms}
  - id: sms
    channel: sms
    template: ping
    ack_deadline: 10m
targets: {email: 15m, voice: 5m, sms: 10m}
templates:
  ping:
    en:
      subject: "Communication test {{ run.id }}"
      body: "Please confirm: {{ ack_url }} (code {{ ack_code }}) before {{ deadline }}."
"""


def seed_directory(engine: Engine, *, second_email: bool = False) -> dict[str, int]:
    ids: dict[str, int] = {}
    with session_scope(engine) as s:
        desk = FieldOfWork(code="crisis-desk", name="24/7 crisis desk")
        s.add(desk)
        coord = Organisation(code="XA-COORD", name="Coordination Office", country="BE", languages=["en"], timezone="Europe/Brussels", role="coordinator")
        s.add(coord)
        for code, name, lang, tz, cc in (("XA-ONE", "Centre One", "nl", "Europe/Brussels", "32"),
                                         ("XB-TWO", "Centre Two", "de", "Europe/Berlin", "49")):
            org = Organisation(code=code, name=name, country="BE", languages=[lang], timezone=tz)
            s.add(org)
            s.flush()
            cp = ContactPoint(code=f"{code}/crisis-desk", organisation_id=org.id, field_id=desk.id, name=f"{name} desk", languages=[lang])
            s.add(cp)
            s.flush()
            ids[code] = cp.id or 0
            slug = code.lower()
            s.add(Endpoint(contact_point_id=cp.id, kind="email", address=f"desk@{slug}.example", priority=1))
            if second_email:
                s.add(Endpoint(contact_point_id=cp.id, kind="email", address=f"backup@{slug}.example", priority=2))
            s.add(Endpoint(contact_point_id=cp.id, kind="voice", address=f"+{cc}25550100", priority=1))
            s.add(Endpoint(contact_point_id=cp.id, kind="sms", address=f"+{cc}470555010", priority=1))
    return ids


def store_playbook(engine: Engine, text: str = PLAYBOOK, playbook_id: str = "test-playbook") -> int:
    with session_scope(engine) as s:
        pb = s.get(Playbook, playbook_id) or Playbook(id=playbook_id)
        s.add(pb)
        s.flush()
        rev = PlaybookRevision(playbook_id=playbook_id, content_hash=hashlib.sha256(text.encode()).hexdigest(),
                               title="Test playbook", owner="XA-COORD", source_text=text,
                               created_at=datetime(2026, 1, 1, tzinfo=UTC))
        s.add(rev)
        s.flush()
        pb.current_revision_id = rev.id
        s.add(pb)
        return rev.id or 0


def fast_playbook(orgs: list[str], *, deadline: str = "3s", retries: int = 1, interval: str = "1s") -> str:
    """A playbook with second-long deadlines, for tests that run a real daemon process."""
    participants = "\n".join(f"  - organisation: {o}\n    fields: [crisis-desk]" for o in orgs)
    return f"""
id: fast-playbook
title: Fast playbook
owner: {orgs[0]}
timezone: Europe/Brussels
default_language: en
participants:
{participants}
steps:
  - id: email
    channel: email
    template: ping
    ack_deadline: {deadline}
    retries: {retries}
    retry_interval: {interval}
  - id: voice
    channel: voice
    template: ping
    ack_deadline: {deadline}
    retries: {retries}
    retry_interval: {interval}
    escalate: {{step: sms}}
  - id: sms
    channel: sms
    template: ping
    ack_deadline: {deadline}
targets: {{email: {deadline}, voice: {deadline}, sms: {deadline}}}
templates:
  ping:
    en:
      subject: "Communication test {{{{ run.id }}}}"
      body: "Please confirm: {{{{ ack_url }}}} (code {{{{ ack_code }}}}) before {{{{ deadline }}}}."
"""


def seed_bulk(engine: Engine, *, organisations: int = 4, per_org: int = 10) -> list[str]:
    """``organisations`` x ``per_org`` contact points in crisis-desk, each with e-mail, voice and SMS."""
    codes = []
    with session_scope(engine) as s:
        desk = FieldOfWork(code="crisis-desk", name="24/7 crisis desk")
        s.add(desk)
        s.flush()
        for o in range(organisations):
            code = f"X{chr(65 + o)}-BULK"
            codes.append(code)
            org = Organisation(code=code, name=f"Bulk centre {o}", country="BE", languages=["en"], timezone="Europe/Brussels")
            s.add(org)
            s.flush()
            for i in range(per_org):
                cp = ContactPoint(code=f"{code}/desk-{i}", organisation_id=org.id, field_id=desk.id, name=f"Desk {o}-{i}")
                s.add(cp)
                s.flush()
                s.add(Endpoint(contact_point_id=cp.id, kind="email", address=f"desk{i}@bulk{o}.example"))
                s.add(Endpoint(contact_point_id=cp.id, kind="voice", address=f"+3225{o:02d}{i:04d}"))
                s.add(Endpoint(contact_point_id=cp.id, kind="sms", address=f"+32470{o:02d}{i:04d}"))
    return codes
