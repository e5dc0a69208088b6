"""CAP 1.2 messages: our test alert, and reading a partner's message safely.

Reading (``read_cap``) refuses, in this order: a DTD or an entity (defusedxml: no
billion-laughs expansion, no external entity, nothing fetched), XML that does not parse, a
document the OASIS CAP 1.2 schema (``CAP-v1.2.xsd``, shipped with commtest) does not
accept. Each refusal is a ``CapRefused`` with the HTTP status the web hook answers.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from xml.etree import ElementTree as ET

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from commtest.clock import UTC

if TYPE_CHECKING:
    import xmlschema
from commtest.errors import ChannelError

NS = "urn:oasis:names:tc:emergency:cap:1.2"
SCHEMA = Path(__file__).resolve().parent / "CAP-v1.2.xsd"
IDENTIFIER_PREFIX = "commtest"


class CapRefused(ChannelError):
    """A CAP message we do not accept; ``status`` is the HTTP answer (4xx)."""

    def __init__(self, message: str, status: int, code: str) -> None:
        super().__init__(message, permanent=True, code=code)
        self.status = status


@lru_cache(maxsize=1)
def schema() -> xmlschema.XMLSchema:
    # Loaded from the shipped file; the schema imports nothing, so nothing is fetched. Imported
    # here, on the first CAP message: xmlschema and the parsed schema cost a daemon without CAP
    # partners about 17 MB for nothing.
    import xmlschema

    return xmlschema.XMLSchema(str(SCHEMA))


def cap_time(at: datetime) -> str:
    """CAP's dateTime: seconds, an explicit offset, and UTC written -00:00 (CAP 1.2, 3.3.2)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") + "-00:00"


def alert_identifier(partner: str, run_id: int, ping_id: int) -> str:
    """``commtest.<partner>.<run>.<ping>.<random>``: unique, no spaces, commas, '<' or '&'."""
    return f"{IDENTIFIER_PREFIX}.{partner}.{run_id}.{ping_id}.{secrets.token_hex(6)}"


def partner_of_identifier(identifier: str) -> str | None:
    parts = identifier.split(".")
    return parts[1] if len(parts) == 5 and parts[0] == IDENTIFIER_PREFIX else None


def build_alert(*, identifier: str, sender: str, sent: datetime, addresses: str, run_id: int, ping_id: int,
                language: str, headline: str, text: str, sender_name: str) -> bytes:
    """Our test alert: status Test, msgType Alert, scope Private to the partner, the run and
    ping named in ``code`` and ``parameter`` (so the partner's people see what it is)."""
    ET.register_namespace("", NS)

    def sub(parent: ET.Element, tag: str, value: str) -> ET.Element:
        el = ET.SubElement(parent, f"{{{NS}}}{tag}")
        el.text = value
        return el

    alert = ET.Element(f"{{{NS}}}alert")
    sub(alert, "identifier", identifier)
    sub(alert, "sender", sender)
    sub(alert, "sent", cap_time(sent))
    sub(alert, "status", "Test")
    sub(alert, "msgType", "Alert")
    sub(alert, "source", "commtest")
    sub(alert, "scope", "Private")
    sub(alert, "addresses", addresses)
    sub(alert, "code", f"commtest-run:{run_id}")
    sub(alert, "code", f"commtest-ping:{ping_id}")
    sub(alert, "note", "Communication test: please acknowledge with a CAP Ack referencing this alert.")
    info = ET.SubElement(alert, f"{{{NS}}}info")
    sub(info, "language", language)
    sub(info, "category", "Other")
    sub(info, "event", "Communication test")
    sub(info, "responseType", "None")
    sub(info, "urgency", "Unknown")
    sub(info, "severity", "Unknown")
    sub(info, "certainty", "Unknown")
    sub(info, "senderName", sender_name)
    sub(info, "headline", headline[:160] or "Communication test")
    sub(info, "description", text)
    for name, value in (("commtest-run", str(run_id)), ("commtest-ping", str(ping_id))):
        par = ET.SubElement(info, f"{{{NS}}}parameter")
        sub(par, "valueName", name)
        sub(par, "value", value)
    return bytes(ET.tostring(alert, encoding="utf-8", xml_declaration=True))


@dataclass(frozen=True)
class CapMessage:
    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    references: tuple[tuple[str, str, str], ...]  # (sender, identifier, sent) of each referenced message
    note: str = ""


def read_cap(body: bytes) -> CapMessage:
    """Parse and validate one CAP 1.2 message; ``CapRefused`` (400 or 422) otherwise."""
    try:
        root: ET.Element = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise CapRefused(f"refused: the XML declares a DTD or entities ({type(exc).__name__}); CAP needs neither",
                         400, "cap-entities") from exc
    except SafeET.ParseError as exc:
        raise CapRefused(f"not well-formed XML: {exc}", 400, "cap-malformed") from exc
    if root.tag != f"{{{NS}}}alert":
        raise CapRefused(f"expected a CAP 1.2 <alert> in namespace {NS}, found {root.tag}", 422, "cap-schema")
    errors = list(schema().iter_errors(root))
    if errors:
        first = errors[0]
        where = getattr(first, "path", None) or ""
        raise CapRefused(f"not valid CAP 1.2 (OASIS schema){' at ' + where if where else ''}: {first.reason}",
                         422, "cap-schema")

    def text(tag: str) -> str:
        return (root.findtext(f"{{{NS}}}{tag}") or "").strip()

    refs: list[tuple[str, str, str]] = []
    for triple in text("references").split():
        parts = triple.split(",")
        if len(parts) == 3:
            refs.append((parts[0], parts[1], parts[2]))
    return CapMessage(text("identifier"), text("sender"), text("sent"), text("status"), text("msgType"),
                      tuple(refs), text("note"))


def build_ack(*, identifier: str, sender: str, sent: datetime, addresses: str,
              references: list[tuple[str, str, str]], note: str = "") -> bytes:
    """A partner's Ack (used by the fake partner and the tests): msgType Ack, status Test."""
    ET.register_namespace("", NS)
    alert = ET.Element(f"{{{NS}}}alert")
    for tag, value in (("identifier", identifier), ("sender", sender), ("sent", cap_time(sent)), ("status", "Test"),
                       ("msgType", "Ack"), ("scope", "Private"), ("addresses", addresses)):
        ET.SubElement(alert, f"{{{NS}}}{tag}").text = value
    if note:
        ET.SubElement(alert, f"{{{NS}}}note").text = note
    ET.SubElement(alert, f"{{{NS}}}references").text = " ".join(",".join(r) for r in references)
    return bytes(ET.tostring(alert, encoding="utf-8", xml_declaration=True))
