"""The directory edition (issue 8, "Layout a reviewer can print" and "Directory editions"):
grouped by organisation, the endpoints that failed in the last test flagged, and its timestamp
never before the events it reports."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.email.devserver import DevSmtpServer
from commtest import events as ev
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import DirectoryEdition, Endpoint, Ping
from reports.directory_report import publish_directory
from reports.render import render_html
from scheduler.records import acknowledge
from tests.channels.email_support import email_engine, smtp, smtp_server  # noqa: F401
from tests.scheduler.seed import seed_directory, store_playbook


@pytest.fixture
def after_a_run(engine: Engine, clock: FrozenClock, smtp: DevSmtpServer) -> Engine:  # noqa: F811
    """A run whose e-mails went through a real SMTP server: XA-ONE's desk confirmed, XB-TWO's
    never did (delivered, no acknowledgement). Calls went to a sandbox: simulated, proving and
    failing nothing."""
    seed_directory(engine)
    store_playbook(engine)
    runs = email_engine(engine, clock, smtp)
    run_id = runs.create_run("test-playbook")
    runs.start_run(run_id)
    runs.tick()
    clock.advance(60)
    with session_scope(engine, durable=True) as s:
        ping = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.address == "desk@xa-one.example")).one()
        acknowledge(s, ping, clock.now(), method="link", actor="web", by="Duty officer XA")
    for _ in range(200):
        runs.tick()
        if runs.is_settled(run_id):
            break
        clock.advance(30)
    runs.close()
    return engine


def test_the_edition_groups_contact_points_by_organisation_and_flags_what_failed_in_the_last_test(
        after_a_run: Engine, clock: FrozenClock) -> None:
    edition = publish_directory(after_a_run, clock)
    endpoints = {(c.organisation, e.kind): e for c in edition.contacts for e in c.endpoints}
    assert endpoints[("XB-TWO", "email")].failed_last_run and not endpoints[("XA-ONE", "email")].failed_last_run
    assert not endpoints[("XB-TWO", "voice")].failed_last_run  # only the sandbox called: proves and fails nothing
    html = render_html(edition, "en")
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    assert headings[:2] == ["Centre One (XA-ONE)", "Centre Two (XB-TWO)"]  # one heading per organisation
    one, two = (html.split(f"<h2>{h}</h2>", 1)[1].split("</table>", 1)[0] for h in headings[:2])
    assert "XB-TWO" not in two and "Centre Two desk" in two  # the organisation is not repeated on each row
    [flagged] = [row for row in re.findall(r"<tr>.*?</tr>", two, re.S) if "⚠" in row]
    assert "desk@xb-two.example" in flagged
    assert "⚠ failed in the last test (delivered, no acknowledgement)" in flagged
    assert "⚠" not in one
    assert "⚠ échec lors du dernier test (remis, sans confirmation)" in render_html(edition, "fr")


def test_an_editions_timestamp_is_never_before_the_events_it_reports(engine: Engine, clock: FrozenClock) -> None:
    ids = seed_directory(engine)
    with session_scope(engine) as s:
        endpoint = s.exec(select(Endpoint).where(Endpoint.contact_point_id == ids["XA-ONE"],
                                                 Endpoint.kind == "email")).one()
        # Another replica, whose clock runs 90 s ahead, proved the endpoint "later" than now.
        proven_at = clock.now() + timedelta(seconds=90)
        endpoint.verified_at = proven_at
        s.add(endpoint)
        ev.record_event(s, at=proven_at, actor="daemon:other", kind=ev.ENDPOINT_VERIFIED, endpoint_id=endpoint.id)
    edition = publish_directory(engine, clock)
    assert edition.published_at >= proven_at
    with session_scope(engine) as s:
        stored = s.get(DirectoryEdition, edition.edition_id)
        assert stored is not None and stored.created_at >= proven_at
    # With the clock past every event, the edition is stamped with the clock.
    clock.advance(3600)
    with session_scope(engine) as s:
        endpoint = s.exec(select(Endpoint).where(Endpoint.contact_point_id == ids["XB-TWO"],
                                                 Endpoint.kind == "email")).one()
        endpoint.label = "functional mailbox"
        s.add(endpoint)
    assert publish_directory(engine, clock).published_at == clock.now()
