"""A channel test: one message or call to one endpoint of the directory, now, through the real
provider, so a coordinator can check a new number before a real test (``commtest channel test``).

It is an ordinary run (recorded in the event log, dispatched, answered and expired by the
engine like any other) with ``trigger = "channel-test"`` and a playbook of its own,
``commtest-channel-test``, generated for the endpoint: one step on its kind, its organisation
and field of work as the only participant, a short text from the officer catalogue in each
officer language. The monthly report leaves such runs out: they test an endpoint, not a
centre's readiness. An answer by a person does prove the endpoint (``verified_at``), which is
the point of checking it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from commtest import events as ev
from commtest.clock import Clock
from commtest.db import run_write
from commtest.errors import ConfigError, NotFoundError
from commtest.i18n import DOMAIN_LANGUAGES, Texts
from commtest.masking import mask_address
from commtest.models import (
    CHANNEL_TEST_TRIGGER,
    ContactPoint,
    Endpoint,
    FieldOfWork,
    Organisation,
    Ping,
    PingState,
    Playbook,
    PlaybookRevision,
    RunStatus,
    TestRun,
)
from playbooks.durations import format_duration
from playbooks.loader import parse_playbook

__all__ = ["CHANNEL_TEST_PLAYBOOK", "ChannelTestTarget", "channel_test_playbook", "find_endpoint",
           "start_channel_test"]

CHANNEL_TEST_PLAYBOOK = "commtest-channel-test"
TESTABLE_KINDS = ("email", "voice", "sms", "video", "cap")


@dataclass(frozen=True)
class ChannelTestTarget:
    endpoint_id: int
    contact_point_id: int
    contact_point_code: str
    organisation_code: str
    field_code: str
    kind: str
    address: str
    language: str
    status: str


def _normalise(kind: str, address: str) -> str:
    text = address.strip()
    if kind in ("voice", "sms"):
        try:
            number = phonenumbers.parse(text, None)
        except phonenumbers.NumberParseException as exc:
            raise NotFoundError(f"{address!r}: write the number in international form, e.g. +32 2 555 01 10") from exc
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return text


def find_endpoint(s: Session, kind: str, address: str, default_language: str) -> ChannelTestTarget:
    """The directory's endpoint of ``kind`` at ``address`` (a channel test only goes to a known one)."""
    if kind not in TESTABLE_KINDS:
        raise ConfigError(f"{kind!r}: a channel test sends on {', '.join(TESTABLE_KINDS)}; a manual check needs a person")
    wanted = _normalise(kind, address)
    rows = s.exec(
        select(Endpoint, ContactPoint, Organisation, FieldOfWork)
        .join(ContactPoint, col(ContactPoint.id) == col(Endpoint.contact_point_id))
        .join(Organisation, col(Organisation.id) == col(ContactPoint.organisation_id))
        .join(FieldOfWork, col(FieldOfWork.id) == col(ContactPoint.field_id))
        .where(Endpoint.kind == kind).order_by(col(Endpoint.id))
    ).all()
    for ep, cp, org, fld in rows:
        same = ep.address.lower() == wanted.lower() if kind == "email" else ep.address == wanted
        if same:
            langs = list(cp.languages or []) or list(org.languages or []) or [default_language]
            return ChannelTestTarget(ep.id or 0, cp.id or 0, cp.code, org.code, fld.code, kind, ep.address, langs[0],
                                     ep.status)
    raise NotFoundError(f"no {kind} endpoint {mask_address(wanted)} in the directory: import it first "
                        "(`commtest directory import FILE`), then test it")


def _texts(kind: str, language: str) -> dict[str, str]:
    """The test's message in one language; Jinja placeholders go in after translation."""
    t = Texts("officer", language)
    sender, code, link = "{{ sender }}", "{{ ack_code }}", "{{ ack_url }}"
    if kind == "voice":
        return {"body": t("This is a test call from %(sender)s to check this number before a communication test.",
                          sender=sender)}
    if kind == "sms":
        return {"body": t("Test message from %(sender)s to check this number before a communication test: "
                          "reply %(code)s to confirm.", sender=sender, code=code)}
    subject = t("Test of this address by %(sender)s", sender=sender)
    body = t("This message from %(sender)s checks this address before a communication test. Please confirm that "
             "you received it: %(link)s", sender=sender, link=link)
    return {"subject": subject, "body": body}


def channel_test_playbook(target: ChannelTestTarget, owner: str, deadline: timedelta, timezone: str) -> str:
    """The generated playbook (JSON is YAML): validated like any playbook before it is stored."""
    minutes = format_duration(deadline)
    spec = {
        "id": CHANNEL_TEST_PLAYBOOK,
        "title": "Channel test of one endpoint",
        "owner": owner,
        "description": "Generated by `commtest channel test`: one ping to one endpoint; not counted in reports.",
        "timezone": timezone,
        "default_language": "en",
        "participants": [{"organisation": target.organisation_code, "fields": [target.field_code]}],
        "steps": [{"id": "test", "channel": target.kind, "template": "channel-test", "ack_deadline": minutes}],
        "targets": {target.kind: minutes},
        "templates": {"channel-test": {lang: _texts(target.kind, lang) for lang in DOMAIN_LANGUAGES["officer"]}},
    }
    return json.dumps(spec, ensure_ascii=False, indent=1)


def _store(s: Session, text: str, owner: str, now: datetime) -> int:
    spec = parse_playbook(text, "<channel test>")
    digest = hashlib.sha256(text.encode()).hexdigest()
    playbook = s.get(Playbook, spec.id)
    if playbook is None:
        playbook = Playbook(id=spec.id, source_path="(generated by commtest channel test)")
        s.add(playbook)
        s.flush()
    revision = s.exec(select(PlaybookRevision).where(PlaybookRevision.playbook_id == spec.id,
                                                     PlaybookRevision.content_hash == digest)).first()
    if revision is None:
        revision = PlaybookRevision(playbook_id=spec.id, content_hash=digest, title=spec.title, owner=owner,
                                    source_path="(generated)", source_text=text, created_at=now)
        s.add(revision)
        s.flush()
    playbook.current_revision_id = revision.id
    playbook.last_seen_at = now
    s.add(playbook)
    return revision.id or 0


def start_channel_test(engine: Engine, clock: Clock, kind: str, address: str, *, provider: str, deadline: timedelta,
                       by: str, timezone: str, default_language: str, actor: str) -> tuple[int, int]:
    """Create the channel-test run and its one ping, due now; returns (run id, ping id)."""
    def work(s: Session) -> tuple[int, int]:
        now = clock.now()
        target = find_endpoint(s, kind, address, default_language)
        coordinator = s.exec(select(Organisation.code).where(Organisation.role == "coordinator")
                             .order_by(col(Organisation.id))).first()
        owner = coordinator or target.organisation_code
        revision_id = _store(s, channel_test_playbook(target, owner, deadline, timezone), owner, now)
        run = TestRun(playbook_id=CHANNEL_TEST_PLAYBOOK, revision_id=revision_id,
                      dedupe_key=f"channel-test:{now.isoformat()}:{target.endpoint_id}:{hashlib.sha256(by.encode()).hexdigest()[:8]}",
                      trigger=CHANNEL_TEST_TRIGGER, status=RunStatus.running.value, fire_at=now, started_at=now,
                      started_by=by[:100], note=f"channel test of {kind} {mask_address(target.address)}")
        s.add(run)
        s.flush()
        ev.record_event(s, at=now, actor=actor, kind=ev.RUN_PLANNED, run_id=run.id, playbook_id=CHANNEL_TEST_PLAYBOOK,
                        revision_id=revision_id, schedule_id=None, trigger=CHANNEL_TEST_TRIGGER, fire_at=now,
                        announced=False)
        ev.record_event(s, at=now, actor=actor, kind=ev.RUN_STARTED, run_id=run.id, started_by=run.started_by)
        ping = Ping(run_id=run.id or 0, contact_point_id=target.contact_point_id, endpoint_id=target.endpoint_id,
                    organisation_code=target.organisation_code, channel=kind, provider=provider, address=target.address,
                    language=target.language, step="test", attempt=1, step_attempt=1, state=PingState.pending.value,
                    due_at=now)
        s.add(ping)
        s.flush()
        ev.record_event(s, at=now, actor=actor, kind=ev.PING_PLANNED, run_id=run.id, ping_id=ping.id,
                        organisation_code=ping.organisation_code, channel=kind, contact_point_id=ping.contact_point_id,
                        step="test", attempt=1, step_attempt=1, endpoint_id=target.endpoint_id,
                        address=mask_address(target.address), due_at=now, contact_point=target.contact_point_code,
                        field=target.field_code, endpoint_status=target.status)
        return run.id or 0, ping.id or 0

    return run_write(engine, work)

