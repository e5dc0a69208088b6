"""The console's writes that had no test: API tokens and calendar links (made, shown once,
revoked, refused afterwards), and a viewer refused every coordinator's write with nothing
recorded."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.models import DirectoryCorrection, Event, Ping, RunStatus, Schedule, TestRun
from tests.web.console_support import World, make_world


@pytest.fixture
def world(engine: Engine, clock: FrozenClock) -> Iterator[World]:
    yield from make_world(engine, clock)


def events(engine: Engine, kind: str) -> list[Event]:
    with session_scope(engine) as s:
        return list(s.exec(select(Event).where(Event.kind == kind).order_by(col(Event.id))).all())


def switch_to(world: World, username: str) -> None:
    world.client.cookies.clear()
    assert world.login(username).status_code == 303


# --- API tokens -------------------------------------------------------------------------------


def _api_runs(world: World, token: str) -> int:
    return world.client.get("/api/v1/runs", headers={"Authorization": f"Bearer {token}"}).status_code


def test_a_user_makes_an_api_token_that_is_shown_once_works_and_stops_when_revoked(world: World) -> None:
    world.login("vera")  # everyone may make their own tokens, a viewer too
    r = world.post("/console/tokens", {"name": "crisis platform"}, page="/console/tokens")
    assert r.status_code == 200
    secret = re.search(r'<code id="new-token">(ct_[A-Za-z0-9_-]{43})</code>', r.text)
    assert secret is not None, r.text
    token = secret.group(1)
    listing = world.client.get("/console/tokens?lang=en").text
    assert "crisis platform" in listing and f"{token[:10]}…" in listing and token not in listing  # never shown again
    assert _api_runs(world, token) == 200
    [created] = events(world.engine, "token.created")
    assert created.actor == "console:vera" and created.data["name"] == "crisis platform"
    token_id = int(re.findall(r'action="/console/tokens/(\d+)/revoke', listing)[0])
    r = world.post(f"/console/tokens/{token_id}/revoke", page="/console/tokens")
    assert r.status_code == 303 and r.headers["location"] == "/console/tokens?lang=en"
    assert _api_runs(world, token) == 401
    assert f"/console/tokens/{token_id}/revoke" not in world.client.get("/console/tokens?lang=en").text
    assert [e.data["token_id"] for e in events(world.engine, "token.revoked")] == [token_id]


def test_a_token_without_a_name_is_refused_with_the_reason(world: World) -> None:
    world.login("cora")
    r = world.post("/console/tokens", {"name": "  "}, page="/console/tokens")
    assert r.status_code == 400 and "say in 1-100 characters what the token is for" in r.text
    assert events(world.engine, "token.created") == []


def test_nobody_revokes_another_users_token(world: World) -> None:
    world.login("cora")
    r = world.post("/console/tokens", {"name": "dashboard"}, page="/console/tokens")
    token = re.search(r'<code id="new-token">([^<]+)</code>', r.text).group(1)  # type: ignore[union-attr]
    token_id = int(re.findall(r'action="/console/tokens/(\d+)/revoke', r.text)[0])
    switch_to(world, "adam")  # not even an admin, through the console: it is cora's
    r = world.post(f"/console/tokens/{token_id}/revoke", page="/console/tokens")
    assert r.status_code == 404 and f"no API token {token_id}" in r.text
    assert _api_runs(world, token) == 200 and events(world.engine, "token.revoked") == []


def test_a_token_form_without_its_form_token_is_refused(world: World) -> None:
    world.login("cora")
    assert world.post("/console/tokens", {"name": "dashboard"}, csrf=False).status_code == 403
    assert events(world.engine, "token.created") == []


# --- calendar links ---------------------------------------------------------------------------


def test_a_coordinator_makes_a_calendar_link_that_is_shown_once_and_revokes_it(world: World) -> None:
    world.login("cora")
    r = world.post("/console/directory/feeds", {"organisation": "XA-ONE"}, page="/console/directory")
    assert r.status_code == 200
    found = re.search(r"<code>http://[^<]*(/calendar/[A-Za-z0-9_-]{43}\.ics)</code>", r.text)
    assert found is not None, r.text
    url = found.group(1)
    assert world.client.get(url).status_code == 200
    page = world.client.get("/console/directory?lang=en").text
    assert url not in page and "XA-ONE: created by cora" in page  # listed, never shown again
    [created] = events(world.engine, "feed.created")
    assert created.actor == "console:cora" and created.organisation_code == "XA-ONE"
    feed_id = created.data["feed_id"]
    r = world.post(f"/console/directory/feeds/{feed_id}/revoke", page="/console/directory")
    assert r.status_code == 303 and r.headers["location"] == "/console/directory?lang=en#feeds"
    assert world.client.get(url).status_code == 404
    assert [e.data["feed_id"] for e in events(world.engine, "feed.revoked")] == [feed_id]


def test_a_calendar_link_for_an_unknown_organisation_or_feed_is_404_and_changes_nothing(world: World) -> None:
    world.login("cora")
    r = world.post("/console/directory/feeds", {"organisation": "ZZ-NONE"}, page="/console/directory")
    assert r.status_code == 404 and "no organisation &#39;ZZ-NONE&#39; in the directory" in r.text
    r = world.post("/console/directory/feeds/999/revoke", page="/console/directory")
    assert r.status_code == 404 and "no calendar link 999" in r.text
    assert events(world.engine, "feed.created") == events(world.engine, "feed.revoked") == []


def test_a_viewer_neither_makes_nor_revokes_a_calendar_link(world: World) -> None:
    world.login("cora")
    world.post("/console/directory/feeds", {"organisation": "XA-ONE"}, page="/console/directory")
    feed_id = events(world.engine, "feed.created")[0].data["feed_id"]
    switch_to(world, "vera")
    assert "Create a calendar link" not in world.client.get("/console/directory?lang=en").text
    r = world.post("/console/directory/feeds", {"organisation": "XA-ONE"}, page="/console/directory")
    assert r.status_code == 403 and "only coordinator or admin may create or revoke calendar links" in r.text
    r = world.post(f"/console/directory/feeds/{feed_id}/revoke", page="/console/directory")
    assert r.status_code == 403
    assert len(events(world.engine, "feed.created")) == 1 and events(world.engine, "feed.revoked") == []


# --- a viewer is refused every coordinator's write ----------------------------------------------


@pytest.fixture
def operated(world: World) -> dict[str, int]:
    """A running test with a sent attempt, a schedule and a pending correction, made by a
    coordinator; then the browser signs in as a viewer."""
    from channels.sandbox import Rule, SandboxChannel, SandboxScript
    from commtest.corrections import file_correction

    world.login("cora")
    r = world.post("/console/playbooks/test-playbook/run", page="/console/playbooks/test-playbook/run")
    run_id = int(r.headers["location"].split("/")[3].split("?")[0])
    quiet = SandboxScript(default=Rule("never"))
    world.channels.update({k: SandboxChannel(k, world.clock, quiet) for k in ("email", "voice", "sms", "video", "cap")})
    world.drive(0)
    with session_scope(world.engine) as s:
        ping = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.channel == "voice")).first()
        assert ping is not None and ping.state == "sent"
        schedule = Schedule(playbook_id="test-playbook", key="spring", revision_id=1, announced=False,
                            description="Spring")
        s.add(schedule)
        s.flush()
        ids = {"run": run_id, "ping": ping.id or 0, "schedule": schedule.id or 0}
    ids["correction"] = file_correction(world.engine, ids["ping"], world.clock.now(), phone="+32 2 555 01 99",
                                        by="J. Peeters (fictional)")
    switch_to(world, "vera")
    return ids


def _state(engine: Engine, ids: dict[str, int]) -> tuple[object, ...]:
    with session_scope(engine) as s:
        run, ping = s.get(TestRun, ids["run"]), s.get(Ping, ids["ping"])
        schedule, correction = s.get(Schedule, ids["schedule"]), s.get(DirectoryCorrection, ids["correction"])
        assert run and ping and schedule and correction
        count = len(s.exec(select(Event.id)).all())
        return run.status, ping.state, ping.ack_method, schedule.paused, correction.status, count


@pytest.mark.parametrize("path, data, action", [
    ("/console/runs/{run}/abort", {"reason": "not mine to call off"}, "start or abort a test"),
    ("/console/runs/{run}/manual", {"ping": "{ping}", "how": "radio", "by": "duty officer"},
     "record a manual outcome"),
    ("/console/schedules/{schedule}/pause", {}, "pause or resume a schedule"),
    ("/console/schedules/{schedule}/resume", {}, "pause or resume a schedule"),
    ("/console/directory/corrections/{correction}/approve", {}, "approve or reject a correction"),
    ("/console/directory/corrections/{correction}/reject", {"note": "no"}, "approve or reject a correction"),
])
def test_a_viewer_is_refused_a_coordinators_write_and_nothing_changes(world: World, operated: dict[str, int], path: str,
                                                                      data: dict[str, str], action: str) -> None:
    before = _state(world.engine, operated)
    assert before[0] == RunStatus.running.value and before[1] == "sent" and before[4] == "pending"
    r = world.post(path.format(**operated), {k: v.format(**operated) for k, v in data.items()},
                   page=f"/console/runs/{operated['run']}")
    assert r.status_code == 403, r.text
    assert f"Your role (viewer) does not allow this: only coordinator or admin may {action}." in r.text
    assert _state(world.engine, operated) == before
