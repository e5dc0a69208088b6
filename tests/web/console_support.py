"""A console on a small fictional world: the test directory and playbook, one user per role,
the app in process, and the run engine with sandbox officers driven by a frozen clock."""
from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.engine import Engine

from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxScript
from commtest.clock import UTC, FrozenClock
from commtest.settings import Settings
from commtest.users import add_user
from scheduler.engine import RunEngine
from tests.scheduler.seed import seed_directory, store_playbook
from tests.web.conftest import web_settings
from web.app import create_app

PASSWORD = "fictional-pass-phrase-42"
T0 = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)
USERS = {"cora": "coordinator", "vera": "viewer", "rvw": "reviewer", "adam": "admin"}


def field_value(html: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert m, f"the page has no {name} field"
    return m.group(1)


@dataclass
class World:
    engine: Engine
    clock: FrozenClock
    settings: Settings
    client: TestClient
    channels: dict[str, SandboxChannel] = field(default_factory=dict)

    def login(self, username: str, password: str = PASSWORD, **headers: str) -> Response:
        csrf = field_value(self.client.get("/console/login?lang=en").text, "csrf")
        return self.client.post("/console/login?lang=en", data={"username": username, "password": password, "csrf": csrf},
                                headers=headers, follow_redirects=False)

    def token(self, path: str = "/console") -> str:
        return field_value(self.client.get(path + ("&" if "?" in path else "?") + "lang=en").text, "csrf")

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True, page: str = "/console") -> Response:
        values = dict(data or {})
        if csrf:
            values["csrf"] = self.token(page)
        return self.client.post(path + ("&" if "?" in path else "?") + "lang=en", data=values, follow_redirects=False)

    def engine_for_runs(self) -> RunEngine:
        chans = ChannelSet(self.settings, self.clock, self.channels)  # type: ignore[arg-type]
        return RunEngine(self.engine, self.settings, self.clock, chans, actor="test-daemon")

    def drive(self, seconds: float, step: float = 10.0) -> None:
        """Run the leader's ticks for ``seconds`` of simulated time."""
        runs = self.engine_for_runs()
        try:
            elapsed = 0.0
            while elapsed <= seconds:
                runs.tick()
                self.clock.advance(step)
                elapsed += step
        finally:
            runs.close(close_channels=False)


def make_world(engine: Engine, clock: FrozenClock, script: SandboxScript | None = None, **extra: object) -> Iterator[World]:
    seed_directory(engine)
    store_playbook(engine)
    for name, role in USERS.items():
        add_user(engine, name, role, clock, display_name=f"Fictional {role}", password=PASSWORD)
    settings = web_settings(engine, sandbox=True, **extra)
    script = script or SandboxScript(default=Rule("ack", __import__("datetime").timedelta(seconds=60)))
    channels = {k: SandboxChannel(k, clock, script) for k in ("email", "voice", "sms", "video", "cap")}
    with TestClient(create_app(settings, engine, clock), base_url="http://testserver") as client:
        yield World(engine, clock, settings, client, channels)
