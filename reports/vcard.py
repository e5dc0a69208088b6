"""The directory as vCard 4.0 (RFC 6350): one card per contact point.

vobject writes vCard 3.0 by default; we set VERSION 4.0 and only use properties and
parameters whose 4.0 form is the same (ORG, FN, EMAIL, TEL;TYPE=, LANG, URL, NOTE).
"""
from __future__ import annotations

import vobject

from reports.directory_report import ContactEntry

_TEL_TYPE = {"voice": "voice", "sms": "text"}


def contact_vcard(contact: ContactEntry) -> str:
    card = vobject.vCard()
    card.add("version").value = "4.0"
    card.add("fn").value = contact.name
    card.add("n").value = vobject.vcard.Name(family=contact.name) if contact.kind == "person" else vobject.vcard.Name()
    card.add("org").value = [contact.organisation_name, contact.field_name]
    card.add("kind").value = "individual" if contact.kind == "person" else "org"
    if contact.title:
        card.add("title").value = contact.title
    for pref, lang in enumerate(contact.languages, start=1):
        prop = card.add("lang")
        prop.value = lang
        prop.params["PREF"] = [str(pref)]
    for e in contact.endpoints:
        if e.status == "invalid":
            continue  # an endpoint known to be wrong must not travel into address books
        if e.kind == "email":
            prop = card.add("email")
            prop.value = e.address
        elif e.kind in _TEL_TYPE:
            prop = card.add("tel")
            prop.value = e.address
            prop.params["TYPE"] = [_TEL_TYPE[e.kind]]
            # vCard 4.0 wants a URI for TEL; VALUE=uri with tel: keeps 3.0 readers happy too.
            prop.value = f"tel:{e.address}"
            prop.params["VALUE"] = ["uri"]
        elif e.kind == "video":
            prop = card.add("url")
            prop.value = e.address
        else:
            continue
        prop.params["PREF"] = [str(e.priority)]
    card.add("uid").value = f"urn:commtest:contact-point:{contact.code}"
    if contact.last_proven_at:
        card.add("note").value = (
            f"Last proven reachable {contact.last_proven_at:%Y-%m-%d} ({contact.last_proven_channel})"
        )
    return str(card.serialize())


def directory_vcards(contacts: list[ContactEntry]) -> str:
    return "".join(contact_vcard(c) for c in contacts if c.active)
