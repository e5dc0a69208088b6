"""The demo's CAP link: a fake partner platform (NL-NCC's LCMS, fictional) on a loopback
port, and the demo playbook: the shipped one with a CAP step added.

The shipped playbook is left as it is (a CAP step there would make every deployment
configure a CAP provider); the demo writes its own copy next to it, with a ``cap`` step for
NL-NCC only (``organisations: [NL-NCC]``): it alone has a CAP link in the sample directory,
and the other centres are not expected to have one, so they get no "no endpoint" for it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from ruamel.yaml import YAML

from channels.cap.fake_partner import FakeCapPartner
from commtest.clock import Clock

DEMO_PLAYBOOK = "benelux-nrw-demo"
PARTNER = "nl-lcms"
PARTNER_ORGANISATION = "NL-NCC"  # whose platform the partner is

CAP_TEMPLATE = {
    "en": {"subject": "Communication test of the system link",
           "body": "Communication test between the crisis centres' platforms ({{ sender }}). Please acknowledge "
                   "this CAP alert with a CAP Ack before {{ deadline }}."},
    "nl": {"subject": "Communicatietest van de systeemkoppeling",
           "body": "Communicatietest tussen de platforms van de crisiscentra ({{ sender }}). Bevestig dit CAP-bericht "
                   "met een CAP Ack vóór {{ deadline }}."},
    "fr": {"subject": "Test de communication de la liaison entre systèmes",
           "body": "Test de communication entre les plateformes des centres de crise ({{ sender }}). Merci d'accuser "
                   "réception de cette alerte CAP par un CAP Ack avant le {{ deadline }}."},
    "de": {"subject": "Kommunikationstest der Systemkopplung",
           "body": "Kommunikationstest zwischen den Plattformen der Krisenzentren ({{ sender }}). Bitte bestätigen Sie "
                   "diese CAP-Meldung bis {{ deadline }} mit einem CAP-Ack."},
}


def write_demo_playbook(shipped: Path, folder: Path) -> str:
    """Copy the shipped playbook into ``folder`` and write the demo's variant beside it: a
    ``cap`` step for NL-NCC from minute 5 (10 minutes to acknowledge), no schedules of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    yaml = YAML()
    text = shipped.read_text(encoding="utf-8")
    (folder / shipped.name).write_text(text, encoding="utf-8")
    data = yaml.load(text)
    data["id"] = DEMO_PLAYBOOK
    data["title"] = f"{data['title']} (demo, with a CAP link)"
    data.pop("schedules", None)
    data["steps"].append({"id": "cap", "channel": "cap", "template": "cap-alert", "start_after": "5m",
                          "ack_deadline": "10m", "organisations": [PARTNER_ORGANISATION]})
    data["targets"]["cap"] = "10m"
    data["templates"]["cap-alert"] = CAP_TEMPLATE
    with (folder / f"{DEMO_PLAYBOOK}.yaml").open("w", encoding="utf-8") as fh:
        fh.write("# Written by `commtest demo`: the shipped playbook with a CAP step (see channels/cap/demo.py).\n")
        yaml.dump(data, fh)
    return DEMO_PLAYBOOK


class PartnerPump:
    """Sends the fake partner's Acks to our web app as they come due (a thread)."""

    def __init__(self, partner: FakeCapPartner, hook_url: str, clock: Clock, log: Callable[[str], None]) -> None:
        self.partner, self.hook_url, self.clock, self.log = partner, hook_url, clock, log
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    for code in self.partner.flush(self.clock.now(), lambda body, headers: client.post(
                            self.hook_url, content=body, headers=headers).status_code):
                        self.log(f"{PARTNER} (fake LCMS): answered the CAP alert with a signed CAP Ack (HTTP {code})")
                except httpx.HTTPError as exc:
                    self.log(f"(CAP partner simulation error, retrying: {type(exc).__name__}: {exc})")
                self.stop.wait(0.1)
