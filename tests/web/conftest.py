"""Fixtures for the web tests: a database with one run whose e-mail pings were sent, and
the app in process (Starlette's TestClient, an ``httpx.Client``)."""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from channels.base import OutgoingPing, SendResult
from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxScript
from commtest.clock import FrozenClock
from commtest.settings import Settings, load_settings
from scheduler.engine import RunEngine
from tests.channels.email_support import smtp, smtp_server  # noqa: F401  (shared with the e2e tests)
from tests.scheduler.seed import seed_directory, store_playbook
from web.app import create_app


class Recorder:
    """An e-mail provider that keeps the outgoing pings (with their raw tokens)."""

    kind, provider = "email", "recorder"

    def __init__(self) -> None:
        self.sent: list[OutgoingPing] = []

    def send(self, ping: OutgoingPing) -> SendResult:
        self.sent.append(ping)
        return SendResult(provider_ref=f"<ping-{ping.ping_id}.rec@coord.example>")

    def poll_reports(self, now):  # type: ignore[no-untyped-def]
        return []

    def close(self) -> None:
        pass


@dataclass
class Web:
    engine: Engine
    clock: FrozenClock
    settings: Settings
    app: FastAPI
    client: TestClient
    tokens: dict[str, str]  # address -> raw token
    run_id: int


def web_settings(engine: Engine, **extra: object) -> Settings:
    values: dict[str, object] = dict(database_url=engine.url.render_as_string(hide_password=False),
                                     secret_key="fictional-test-secret", ack_suspicious_seconds=10.0,
                                     dispatch_workers=2)
    values.update(extra)
    return load_settings(**values)


def sent_run(engine: Engine, clock: FrozenClock, settings: Settings) -> tuple[int, dict[str, str]]:
    seed_directory(engine)
    store_playbook(engine)
    rec = Recorder()
    quiet = SandboxScript(default=Rule("never"))
    chans = {k: SandboxChannel(k, clock, quiet) for k in ("voice", "sms", "video", "cap", "manual")}
    chans["email"] = rec  # type: ignore[assignment]
    eng = RunEngine(engine, settings, clock, ChannelSet(settings, clock, chans), actor="test")  # type: ignore[arg-type]
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    eng.close()
    return run_id, {p.address: p.token for p in rec.sent}


@pytest.fixture
def web(engine: Engine, clock: FrozenClock) -> Iterator[Web]:
    settings = web_settings(engine)
    run_id, tokens = sent_run(engine, clock, settings)
    app = create_app(settings, engine, clock)
    with TestClient(app, base_url="http://testserver") as client:
        yield Web(engine, clock, settings, app, client, tokens, run_id)
