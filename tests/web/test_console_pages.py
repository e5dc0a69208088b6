"""The console's pages: roles, CSRF, lock-out, starting and watching a run, the directory and its
corrections, schedules, playbooks, the audit log, calendar feeds, metrics."""
from __future__ import annotations

import json
from collections.abc import Iterator

import icalendar
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import DirectoryCorrection, Endpoint, Event, Ping, RunStatus, Schedule, TestRun
from tests.web.console_support import World, field_value, make_world

PAGES = ("/console", "/console/runs", "/console/schedules", "/console/playbooks", "/console/playbooks/test-playbook",
         "/console/playbooks/test-playbook/run", "/console/directory", "/console/reports/monthly", "/console/audit",
         "/console/tokens")


@pytest.fixture
def world(engine: Engine, clock: FrozenClock) -> Iterator[World]:
    yield from make_world(engine, clock)


def runs_of(engine: Engine) -> list[TestRun]:
    with session_scope(engine) as s:
        return list(s.exec(select(TestRun).order_by(col(TestRun.id))).all())


def events(engine: Engine, kind: str) -> list[Event]:
    with session_scope(engine) as s:
        return list(s.exec(select(Event).where(Event.kind == kind).order_by(col(Event.id))).all())


def start(world: World) -> int:
    r = world.post("/console/playbooks/test-playbook/run", page="/console/playbooks/test-playbook/run")
    assert r.status_code == 303, r.text
    return int(r.headers["location"].split("/")[3].split("?")[0])


def test_every_page_renders_for_a_viewer_in_each_language(world: World) -> None:
    world.login("vera")
    for path in PAGES:
        for lang, word in (("en", "Overview"), ("nl", "Overzicht"), ("fr", "Vue d’ensemble"), ("de", "Übersicht")):
            r = world.client.get(f"{path}?lang={lang}")
            assert r.status_code == 200, (path, lang)
            assert word in r.text and "script-src 'self'" in r.headers["content-security-policy"] or "sha256" in \
                r.headers["content-security-policy"]


def test_anonymous_pages_redirect_to_the_sign_in_page(world: World) -> None:
    for path in PAGES:
        r = world.client.get(path + "?lang=nl", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login?lang=nl&next="), path


def test_a_viewer_cannot_start_a_run_but_a_coordinator_can_and_the_leader_starts_it(world: World) -> None:
    world.login("vera")
    page = world.client.get("/console/playbooks/test-playbook/run?lang=en").text
    assert "Start the test now" not in page and "Dry run" in page
    r = world.post("/console/playbooks/test-playbook/run", page="/console/playbooks/test-playbook/run")
    assert r.status_code == 403 and "only coordinator or admin may start or abort a test" in r.text
    assert runs_of(world.engine) == []
    world.client.cookies.clear()
    world.login("cora")
    page = world.client.get("/console/playbooks/test-playbook/run?lang=en").text
    assert "desk@xa-one.example" in page and "SIMULATED — not evidence" in page  # every first ping, marked
    run_id = start(world)
    run = runs_of(world.engine)[0]
    assert run.id == run_id and run.status == RunStatus.planned.value and run.started_by == "cora"
    world.drive(0)
    assert runs_of(world.engine)[0].status == RunStatus.running.value
    board = world.client.get(f"/console/runs/{run_id}?lang=en").text
    assert 'data-org="XA-ONE" data-channel="email" data-verdict="pending"' in board


def test_a_form_without_its_token_is_refused_and_records_nothing(world: World) -> None:
    world.login("cora")
    r = world.post("/console/playbooks/test-playbook/run", csrf=False)
    assert r.status_code == 403 and "This form is too old or did not come from the console." in r.text
    r = world.client.post("/console/playbooks/test-playbook/run", data={"csrf": "1.deadbeef"}, follow_redirects=False)
    assert r.status_code == 403 and runs_of(world.engine) == []


def test_repeated_wrong_passwords_lock_the_account_whatever_the_address(world: World) -> None:
    codes = [world.login("cora", "wrong-password-123", **{"X-Forwarded-For": f"198.51.100.{i}"}).status_code
             for i in range(world.settings.login_lockout_failures)]
    # Different (untrusted) forwarded addresses change nothing: the lock is per user name.
    assert codes == [401] * (world.settings.login_lockout_failures - 1) + [429]
    r = world.login("cora")  # the right password, but locked
    assert r.status_code == 429 and "this user name is locked until" in r.text and int(r.headers["retry-after"]) > 0
    assert "set-cookie" not in r.headers
    failed = events(world.engine, "user.login_failed")
    assert len(failed) == world.settings.login_lockout_failures + 1 and failed[-2].data["locked_until"]
    world.clock.advance(seconds=61)
    assert world.login("cora").status_code == 303  # the first lock is a minute
    assert events(world.engine, "user.login")[-1].data["user"] == "cora"


def test_the_live_board_streams_the_cells_as_the_officers_answer(world: World) -> None:
    world.login("cora")
    run_id = start(world)
    world.drive(90)  # the sandbox officers answer after 60 s
    with world.client.stream("GET", f"/console/runs/{run_id}/live?lang=en") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        data = next(json.loads(line[5:]) for line in lines if line.startswith("data:"))
    assert 'data-org="XA-ONE" data-channel="email" data-verdict="pass"' in data["html"]
    assert "SIMULATED — not evidence" in data["html"] and data["status"] in ("running", "completed")


def test_a_signed_out_browser_gets_no_live_board(world: World) -> None:
    world.login("cora")
    run_id = start(world)
    world.client.post("/console/logout")
    assert world.client.get(f"/console/runs/{run_id}/live").status_code == 401


def test_a_coordinator_records_a_manual_outcome_and_aborts_the_run(world: World) -> None:
    world.login("cora")
    run_id = start(world)
    world.channels.clear()  # nobody answers by themselves now
    from channels.sandbox import Rule, SandboxChannel, SandboxScript

    quiet = SandboxScript(default=Rule("never"))
    world.channels.update({k: SandboxChannel(k, world.clock, quiet) for k in ("email", "voice", "sms", "video", "cap")})
    world.drive(0)
    page = world.client.get(f"/console/runs/{run_id}?lang=en").text
    ping_id = field_value(page.replace('<option value="', 'name="ping" value="', 1), "ping")
    r = world.post(f"/console/runs/{run_id}/manual", {"ping": ping_id, "how": "radio", "by": "duty officer"},
                   page=f"/console/runs/{run_id}")
    assert r.status_code == 303
    with session_scope(world.engine) as s:
        ping = s.get(Ping, int(ping_id))
        assert ping is not None and ping.ack_method == "manual:radio" and ping.outcome == "manual"
    assert events(world.engine, "ping.acked")[-1].actor == "console:cora"
    r = world.post(f"/console/runs/{run_id}/abort", {"reason": "exercise called off"}, page=f"/console/runs/{run_id}")
    assert r.status_code == 303 and runs_of(world.engine)[0].status == RunStatus.aborted.value
    audit = world.client.get("/console/audit?lang=en").text
    assert "test called off" in audit and "exercise called off" in audit and "cora" in audit


def test_the_run_report_is_its_own_framed_document_and_downloads(world: World) -> None:
    world.login("vera")
    world.client.cookies.clear()
    world.login("cora")
    run_id = start(world)
    world.drive(60 * 40, step=60)
    page = world.client.get(f"/console/runs/{run_id}/report?lang=en")
    assert page.status_code == 200 and f'src="/console/runs/{run_id}/report.html?lang=en"' in page.text
    assert "frame-src 'self'" in page.headers["content-security-policy"] and "Timeline" in page.text
    framed = world.client.get(f"/console/runs/{run_id}/report.html?lang=en")
    assert framed.headers["x-frame-options"] == "SAMEORIGIN" and "frame-ancestors 'self'" in \
        framed.headers["content-security-policy"]
    assert "/static/console.css" not in framed.text  # the report keeps its own fonts and styles
    download = world.client.get(f"/console/runs/{run_id}/report.json?lang=en")
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.json()["run"]["id"] == run_id


def test_pausing_a_schedule_withdraws_its_planned_run_and_is_audited(world: World, engine: Engine) -> None:
    from commtest.models import Schedule as Sch

    with session_scope(engine) as s:
        pb_rev = s.exec(select(TestRun)).first()
        assert pb_rev is None
        sch = Sch(playbook_id="test-playbook", key="spring", revision_id=1, announced=False, description="Spring")
        s.add(sch)
        s.flush()
        sch_id = sch.id
    world.login("vera")
    r = world.post(f"/console/schedules/{sch_id}/pause", page="/console/schedules")
    assert r.status_code == 403
    world.client.cookies.clear()
    world.login("cora")
    assert world.post(f"/console/schedules/{sch_id}/pause", page="/console/schedules").status_code == 303
    with session_scope(engine) as s:
        assert s.get(Schedule, sch_id).paused  # type: ignore[union-attr]
    assert world.post(f"/console/schedules/{sch_id}/resume", page="/console/schedules").status_code == 303
    kinds = [e.kind for e in events(engine, "schedule.paused") + events(engine, "schedule.resumed")]
    assert kinds == ["schedule.paused", "schedule.resumed"]
    assert events(engine, "schedule.paused")[0].actor == "console:cora"


def test_a_playbook_upload_lists_every_problem_or_stores_a_revision_with_its_diff(engine: Engine, clock: FrozenClock,
                                                                                     tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.scheduler.seed import PLAYBOOK

    folder = tmp_path / "playbooks"
    folder.mkdir()
    for world in make_world(engine, clock, playbook_dir=folder):
        world.login("cora")
        text = "id: broken\ntitle: Broken\nsteps:\n  - id: mail\n    channel: pigeon\n"
        r = world.post("/console/playbooks", {"text": text, "action": "upload"}, page="/console/playbooks")
        assert r.status_code == 400 and "The playbook was not stored" in r.text and "upload.yaml:5" in r.text
        assert list(folder.iterdir()) == []
        changed = PLAYBOOK.replace("ack_deadline: 15m", "ack_deadline: 20m")
        r = world.post("/console/playbooks", {"text": changed, "action": "validate"}, page="/console/playbooks")
        assert r.status_code == 200 and "is a valid playbook (test-playbook); nothing was written" in r.text
        r = world.post("/console/playbooks", {"text": changed, "action": "upload"}, page="/console/playbooks")
        assert r.status_code == 303 and (folder / "test-playbook.yaml").read_text() == changed
        page = world.client.get("/console/playbooks/test-playbook?lang=en").text
        assert '<span class="removed">-    ack_deadline: 15m</span>' in page
        assert '<span class="added">+    ack_deadline: 20m</span>' in page
        assert events(engine, "playbook.uploaded")[0].data["by"] == "cora"


def test_a_duty_officers_correction_is_approved_and_updates_the_directory(world: World) -> None:
    world.login("cora")
    run_id = start(world)
    quiet = __import__("channels.sandbox", fromlist=["x"])
    world.channels.update({k: quiet.SandboxChannel(k, world.clock, quiet.SandboxScript(default=quiet.Rule("never")))
                           for k in ("email", "voice", "sms", "video", "cap")})
    world.drive(0)
    with session_scope(world.engine) as s:
        ping = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "voice",
                                         Ping.organisation_code == "XA-ONE")).first()
        assert ping is not None and ping.token_hash is None or ping is not None
        ping_id = ping.id
    from commtest.corrections import file_correction

    file_correction(world.engine, ping_id or 0, world.clock.now(), phone="+32 2 555 01 99", contact_name="Crisis desk",
                    by="J. Peeters (fictional)")
    page = world.client.get("/console/directory?lang=en").text
    assert "+3225550199" in page and "J. Peeters (fictional)" in page
    correction_id = page.split('data-correction="')[1].split('"')[0]
    r = world.post(f"/console/directory/corrections/{correction_id}/approve", page="/console/directory")
    assert r.status_code == 303
    with session_scope(world.engine) as s:
        voice = s.exec(select(Endpoint).where(Endpoint.kind == "voice", Endpoint.address == "+3225550199")).one()
        assert voice.verified_at is None
        row = s.get(DirectoryCorrection, int(correction_id))
        assert row is not None and row.status == "approved" and row.decided_by == "cora"
    approved = events(world.engine, "correction.approved")[0]
    assert approved.actor == "console:cora" and approved.data["by"] == "cora"
    assert {c["what"] for c in approved.data["changes"]} == {"voice", "name"}
    assert world.post(f"/console/directory/corrections/{correction_id}/approve",
                      page="/console/directory").status_code == 409  # decided once


def test_editing_an_endpoint_validates_the_address_and_clears_its_verification(world: World) -> None:
    with session_scope(world.engine) as s:
        ep = s.exec(select(Endpoint).where(Endpoint.kind == "email")).first()
        assert ep is not None
        ep_id = ep.id
    world.login("vera")
    assert world.post(f"/console/directory/endpoints/{ep_id}", {"address": "x@y.example", "priority": "1"},
                      page="/console/directory").status_code == 403
    world.client.cookies.clear()
    world.login("cora")
    r = world.post(f"/console/directory/endpoints/{ep_id}", {"address": "not an address", "priority": "1",
                                                             "label": "", "status": "active"}, page="/console/directory")
    assert r.status_code == 400 and "is not a valid e-mail address" in r.text
    r = world.post(f"/console/directory/endpoints/{ep_id}", {"address": "Duty@XA-one.example", "priority": "2",
                                                             "label": "duty", "status": "active"}, page="/console/directory")
    assert r.status_code == 303
    edited = events(world.engine, "endpoint.edited")[0]
    assert edited.actor == "console:cora" and edited.data["changes"]["address"][1] == "D***@xa-one.example"


def test_the_calendar_feed_lists_announced_tests_only(world: World, engine: Engine) -> None:
    from commtest.access.feeds import create_feed
    from datetime import timedelta

    with session_scope(engine) as s:
        for announced in (True, False):
            s.add(TestRun(playbook_id="test-playbook", revision_id=1, dedupe_key=f"k{announced}", trigger="schedule",
                          announced=announced, status="planned", fire_at=world.clock.now() + timedelta(days=3)))
    _feed, token = create_feed(engine, "XA-ONE", world.clock.now(), by="cora", actor="console:cora")
    r = world.client.get(f"/calendar/{token}.ics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/calendar")
    cal = icalendar.Calendar.from_ical(r.content)
    found = [c for c in cal.walk("VEVENT")]
    assert len(found) == 1 and "Communicatietest" in str(found[0]["summary"])  # XA-ONE reads Dutch
    with session_scope(engine) as s:
        announced_id = s.exec(select(TestRun.id).where(TestRun.announced == True)).one()  # noqa: E712
    assert str(found[0]["uid"]).startswith(f"commtest-run-{announced_id}@")
    assert world.client.get("/calendar/" + "x" * 43 + ".ics").status_code == 404


def test_metrics_report_pings_latency_queue_and_the_leader(world: World) -> None:
    from scheduler.heartbeat import Heartbeat

    world.login("cora")
    start(world)
    world.drive(120)
    beat = Heartbeat(world.engine, world.clock, holder="daemon:test", tick_seconds=1, every_seconds=5)
    beat.tick((12, 40, 3))  # the first tick beats: the latest decision 12 ms late, the worst 40 ms, 3 retries
    text = world.client.get("/metrics").text
    assert "commtest_deadline_lateness_seconds 0.012" in text
    assert "commtest_deadline_lateness_max_seconds 0.04" in text
    assert "commtest_deadline_decision_retries_total 3.0" in text
    assert 'commtest_pings_total{channel="email",outcome="acked"} 2.0' in text
    assert 'commtest_ack_latency_seconds_count{channel="email",simulated="true"} 2.0' in text
    assert "commtest_dispatch_queue_depth 0.0" in text and "commtest_leader_up 1.0" in text
    assert 'commtest_leader_info{holder="daemon:test"} 1.0' in text


def test_x_forwarded_for_is_believed_only_from_a_trusted_proxy() -> None:
    from fastapi import Request

    from commtest.settings import load_settings
    from web.client_address import client_address

    def request(peer: str, forwarded: str) -> Request:
        return Request({"type": "http", "client": (peer, 1), "headers": [(b"x-forwarded-for", forwarded.encode())]})

    plain = load_settings(database_url="sqlite://")
    proxied = load_settings(database_url="sqlite://", trusted_proxies=["10.0.0.0/24"])
    assert client_address(request("10.0.0.5", "203.0.113.9"), plain) == "10.0.0.5"
    assert client_address(request("10.0.0.5", "198.51.100.1, 203.0.113.9"), proxied) == "203.0.113.9"
    assert client_address(request("192.0.2.7", "203.0.113.9"), proxied) == "192.0.2.7"


@pytest.mark.parametrize("lang, word", [("en", "blocked"), ("nl", "geblokkeerd"), ("fr", "bloqué"), ("de", "gesperrt")])
def test_a_blocked_number_shows_as_blocked_in_the_directory_in_the_readers_language(world: World, lang: str,
                                                                                  word: str) -> None:
    with session_scope(world.engine) as s:
        sms = s.exec(select(Endpoint).where(Endpoint.kind == "sms")).first()
        assert sms is not None
        sms.status = "blocked"
        s.add(sms)
        sms_id, address = sms.id, sms.address
    world.login("vera")
    page = world.client.get(f"/console/directory?lang={lang}").text
    [item] = [li for li in page.split("<li ") if address in li]
    assert 'status-blocked' in item and f"<strong>{word}</strong>" in item
    edit = world.client.get(f"/console/directory/endpoints/{sms_id}?lang={lang}").text
    assert f'<option value="blocked" selected>{word}</option>' in edit  # saving a label keeps the block


def test_saving_a_blocked_endpoint_with_its_status_unchanged_keeps_it_blocked(world: World) -> None:
    with session_scope(world.engine) as s:
        sms = s.exec(select(Endpoint).where(Endpoint.kind == "sms")).first()
        assert sms is not None
        sms.status = "blocked"
        s.add(sms)
        sms_id, address = sms.id, sms.address
    world.login("cora")
    r = world.post(f"/console/directory/endpoints/{sms_id}", {"address": address, "priority": "1",
                                                             "label": "duty mobile", "status": "blocked"},
                   page="/console/directory")
    assert r.status_code == 303
    with session_scope(world.engine) as s:
        assert s.get(Endpoint, sms_id).status == "blocked"  # type: ignore[union-attr]
