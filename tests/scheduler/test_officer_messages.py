"""What a duty officer reads or hears from the shipped playbook: the organisation's name, the
sender's and the playbook's title in the message's own language, with its grammar right."""
from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.engine import Engine

from channels.base import OutgoingPing, SendResult
from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxScript
from commtest.clock import UTC, FrozenClock
from commtest.directory import import_directory
from commtest.settings import load_settings
from playbooks.store import sync_folder
from scheduler.engine import RunEngine
from scheduler.messages import render_ping
from tests.reports.shipped import REPO, SHIPPED


class Capturing(SandboxChannel):
    """A sandbox that keeps what it was handed, word for word."""

    def __init__(self, kind: str, clock: FrozenClock, sent: list[OutgoingPing]) -> None:
        super().__init__(kind, clock, SandboxScript(default=Rule("never")))
        self.handed = sent

    def send(self, ping: OutgoingPing) -> SendResult:
        self.handed.append(ping)
        return super().send(ping)


@pytest.fixture
def first_pings(engine: Engine, clock: FrozenClock) -> dict[tuple[str, str], OutgoingPing]:
    """The e-mails and calls of the shipped playbook's first minutes, by (organisation, channel)."""
    import_directory(engine, REPO / "data" / "sample-directory.yaml")
    sync_folder(engine, REPO / "playbooks", clock)
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), sandbox=True)
    sent: list[OutgoingPing] = []
    channels = {kind: Capturing(kind, clock, sent) for kind in ("email", "voice", "sms", "video")}
    runs = RunEngine(engine, settings, clock, ChannelSet(settings, clock, channels), actor="test")
    try:
        run_id = runs.create_run(SHIPPED)
        runs.start_run(run_id)
        runs.tick()
        clock.advance(150)  # the calls start after 2 minutes
        runs.tick()
    finally:
        runs.close()
    return {(p.organisation_code, p.channel): p for p in sent}


def test_a_french_email_names_the_centre_and_the_sender_with_their_articles(
        first_pings: dict[tuple[str, str], OutgoingPing]) -> None:
    mail = first_pings[("LU-CNC", "email")]
    assert mail.language == "fr"
    assert mail.body.startswith("Chères et chers collègues du Centre national de crise,")
    assert "envoyé par le Secrétariat général du Benelux." in mail.body  # the sender's French name
    assert "de Centre" not in mail.body and "par Secrétariat" not in mail.body
    call = first_pings[("LU-CNC", "voice")]
    assert "pour le Centre national de crise, de la part du Secrétariat général du Benelux." in call.body
    german = next(a for a in call.alternatives if a.language == "de")  # for a voice that cannot speak French
    assert "Angerufen wird: Nationales Krisenzentrum Luxemburg. Absender: Generalsekretariat der Benelux." in german.body


@pytest.mark.parametrize("org, language, expected", [
    ("DE-NW-LZ", "de", "Für: Lagezentrum NRW, Ministerium des Innern. Absender: Generalsekretariat der Benelux."),
    ("NL-NCC", "nl", "Voor: Nationaal CrisisCentrum. Afzender: Secretariaat-generaal van de Benelux."),
    ("BE-NCCN", "nl", "Voor: Nationaal Crisiscentrum. Afzender: Secretariaat-generaal van de Benelux."),
])
def test_an_email_uses_the_names_the_directory_gives_in_its_language(
        first_pings: dict[tuple[str, str], OutgoingPing], org: str, language: str, expected: str) -> None:
    mail = first_pings[(org, "email")]
    assert mail.language == language and expected in mail.body
    assert "Benelux General Secretariat" not in mail.body  # the default name is English


def test_a_template_gets_the_playbooks_title_and_the_names_in_the_language_it_is_written_in() -> None:
    from playbooks.loader import parse_playbook

    spec = parse_playbook(TITLED, "titled.yaml")
    at = datetime(2026, 4, 14, 8, 15, tzinfo=UTC)
    common = dict(run_id=1, announced=False, organisation_code="LU-CNC", organisation_name="Centre national de crise",
                  contact_name="Permanence CNC", field_code="crisis-desk", timezone="Europe/Luxembourg", ack_url="",
                  ack_code="1234", deadline_at=at, sender="Benelux General Secretariat",
                  organisation_names={"de": "Nationales Krisenzentrum Luxemburg"},
                  sender_names={"fr": "Secrétariat général du Benelux", "de": "Generalsekretariat der Benelux"})
    german = render_ping(spec, spec.step("mail"), language="de-LU", **common)  # type: ignore[arg-type]
    assert german.body == ("Kommunikationstest der Krisenzentren | Nationales Krisenzentrum Luxemburg | "
                           "Generalsekretariat der Benelux | 14.04.2026, 10:15 CEST")
    # No Luxembourgish text: the English one, with the English title and names.
    english = render_ping(spec, spec.step("mail"), language="lb", **common)  # type: ignore[arg-type]
    assert english.language == "en"
    assert english.body.startswith("Crisis centres communication test | Centre national de crise | "
                                   "Benelux General Secretariat | ")


TITLED = """
id: titled
title: Crisis centres communication test
titles: {de: Kommunikationstest der Krisenzentren}
owner: BNL-SG
default_language: en
participants:
  - organisation: LU-CNC
    fields: [crisis-desk]
steps:
  - id: mail
    channel: email
    template: ping
    ack_deadline: 15m
templates:
  ping:
    en:
      subject: Test
      body: "{{ playbook.title }} | {{ organisation.name }} | {{ sender }} | {{ deadline }}"
    de:
      subject: Test
      body: "{{ playbook.title }} | {{ organisation.name }} | {{ sender }} | {{ deadline }}"
"""
