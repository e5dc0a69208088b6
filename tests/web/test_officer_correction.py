"""A duty officer's "our details changed" form on the acknowledgement page: it files a
correction (nothing changes in the directory, the ping is not acknowledged)."""
from __future__ import annotations

import re

from sqlmodel import select

from commtest.db import session_scope
from commtest.models import DirectoryCorrection, Ping
from tests.web.conftest import Web


def correction_form(web: Web, token: str) -> tuple[str, str]:
    ack = web.client.get(f"/ack/{token}?lang=nl").text
    assert ack.count("<button") == 1  # the confirmation page keeps its one button
    link = re.search(r'<a href="([^"]+/correction\?lang=nl)">Onze contactgegevens zijn gewijzigd</a>', ack)
    assert link, "the confirmation page links to the optional form, in the officer's language"
    page = web.client.get(link.group(1)).text
    action = re.search(r'<form method="post" action="([^"]+/correction[^"]*)"', page)
    csrf = re.findall(r'name="csrf" value="([^"]+)"', page)
    assert action and csrf
    return action.group(1), csrf[-1]


def test_the_ack_page_files_new_details_for_a_coordinator_without_acknowledging(web: Web) -> None:
    token = web.tokens["desk@xa-one.example"]
    action, csrf = correction_form(web, token)
    r = web.client.post(action, data={"csrf": csrf, "phone": "02 555 01 99", "email": "", "contact_name": "",
                                      "note": "new desk number", "name": "J. Peeters (fictional)"})
    assert r.status_code == 200 and "Dank u: uw nieuwe gegevens zijn verstuurd" in r.text
    with session_scope(web.engine) as s:
        row = s.exec(select(DirectoryCorrection)).one()
        ping = s.exec(select(Ping).where(Ping.id == row.ping_id)).one()
    assert row.phone == "+3225550199" and row.status == "pending" and row.submitted_by == "J. Peeters (fictional)"
    assert ping.acked_at is None  # sending new details is not a confirmation


def test_a_number_that_cannot_be_read_is_refused_in_the_officers_language(web: Web) -> None:
    token = web.tokens["desk@xb-two.example"]
    action, csrf = correction_form(web, token)
    r = web.client.post(action.replace("lang=nl", "lang=de"), data={"csrf": csrf, "phone": "not a number"})
    assert r.status_code == 400 and "Diese Telefonnummer konnte nicht gelesen werden." in r.text
    r = web.client.post(action, data={"csrf": csrf})
    assert r.status_code == 400 and "Vul minstens een nieuw telefoonnummer" in r.text
    with session_scope(web.engine) as s:
        assert s.exec(select(DirectoryCorrection)).all() == []


def test_a_correction_without_the_pages_csrf_field_or_too_large_is_refused(web: Web) -> None:
    token = web.tokens["desk@xa-one.example"]
    assert web.client.post(f"/ack/{token}/correction", data={"phone": "+3225550199"}).status_code == 403
    r = web.client.post(f"/ack/{token}/correction", content=b"phone=" + b"1" * 10_000,
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    assert web.client.post("/ack/" + "A" * 43 + "/correction", data={"phone": "1"}).status_code == 404
    with session_scope(web.engine) as s:
        assert s.exec(select(DirectoryCorrection)).all() == []
