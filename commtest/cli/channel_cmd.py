"""``commtest channel test KIND ADDRESS``: one test message or call to one endpoint, now.

A coordinator checks a new number before a real test: the ping goes through the configured
provider (in failover order), is recorded in the event log as a run with trigger
``channel-test`` (left out of the monthly report), and the command waits for the answer.
When a daemon leads, it sends the ping and this command follows; otherwise this process
drives the run itself and serves the web app meanwhile, so that Twilio's webhooks and the
acknowledgement page reach it (``COMMTEST_PUBLIC_BASE_URL`` must lead here).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import click

from commtest.context import AppContext
from commtest.errors import ConfigError
from commtest.masking import mask_address

from .base import app_context, cli
from .runview import duration, local, whoami

log = logging.getLogger(__name__)


@cli.group("channel")
def channel_group() -> None:
    """Check one endpoint of the directory on its channel."""


@channel_group.command("test")
@click.argument("kind")
@click.argument("address")
@click.option("--deadline", default="5m", show_default=True, help="How long the officer has to answer.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the answer (or the deadline).")
@click.option("--by", "by", default="", help="Who runs the test (recorded in the event log).")
@click.option("--serve-web/--no-serve-web", default=True, show_default=True,
              help="When no daemon leads: serve the web app (webhooks, acknowledgement page) while waiting.")
def channel_test(kind: str, address: str, deadline: str, wait: bool, by: str, serve_web: bool) -> None:
    """Send one test message or call of KIND to ADDRESS (an endpoint of the directory) and wait for the answer."""
    from channels.registry import not_configured_message
    from playbooks.durations import parse_duration
    from scheduler.channel_test import TESTABLE_KINDS, start_channel_test
    from scheduler.engine import RunEngine
    from scheduler.leader import leader_lock_for

    if kind not in TESTABLE_KINDS:
        raise ConfigError(f"{kind!r}: a channel test sends on {', '.join(TESTABLE_KINDS)}; a manual check needs a person")
    app = app_context()
    settings = app.settings
    providers = settings.providers(kind)
    if not providers:
        raise ConfigError(not_configured_message(kind, "a channel test"))
    try:
        window = parse_duration(deadline)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--deadline") from exc
    who = by or whoami()
    actor = f"cli:{who}"

    def start() -> tuple[int, int]:
        run_id, ping_id = start_channel_test(app.engine, app.clock, kind, address, provider=providers[0],
                                             deadline=window, by=who, timezone=settings.timezone,
                                             default_language=settings.default_language, actor=actor)
        click.echo(f"channel test run {run_id}: ping {ping_id}, {kind} to {mask_address(address.strip())} "
                   f"via {' then '.join(providers)}; waiting up to {deadline} for the answer", err=True)
        return run_id, ping_id

    lock = leader_lock_for(settings.database_url)
    if lock.acquire(wait=False):
        runs = RunEngine(app.engine, settings, app.clock, leader_check=lock.check, actor=actor)
        server = _serve_web(app) if serve_web else None
        try:
            runs.recover()
            run_id, ping_id = start()
            while wait and not runs.is_settled(run_id):
                runs.tick()
                app.clock.sleep(settings.tick_seconds)
            if not wait:
                runs.dispatch_due()
        finally:
            runs.close()
            lock.release()
            if server is not None:
                server.should_exit = True
    else:
        run_id, ping_id = start()
        click.echo(f"the daemon ({lock.describe_holder()}) sends it", err=True)
        probe = RunEngine(app.engine, settings, app.clock, actor=actor)
        try:
            while wait and not probe.is_settled(run_id):
                app.clock.sleep(max(0.5, settings.tick_seconds))
        finally:
            probe.close()
    if wait and not _report(app, ping_id):
        raise SystemExit(1)


def _report(app: AppContext, ping_id: int) -> bool:
    """Print what happened to the ping; True when a person acknowledged it."""
    from commtest.db import read_session
    from commtest.models import Ping
    from scheduler.records import _response_ms

    with read_session(app.engine) as s:
        ping = s.get(Ping, ping_id)
        assert ping is not None
        tz = app.settings.timezone
        times = [f"sent {local(ping.sent_at, tz)}"] if ping.sent_at else ["not sent"]
        if ping.delivered_at:
            times.append(f"{'ringing' if ping.channel == 'voice' else 'delivered'} {local(ping.delivered_at, tz)}")
        if ping.acked_at:
            times.append(f"acknowledged {local(ping.acked_at, tz)} by {ping.ack_method} "
                         f"({duration(_response_ms(ping))})")
        click.echo(f"ping {ping.id}: {ping.channel} via {ping.provider or '-'}" + (" (SIMULATED)" if ping.simulated else ""))
        click.echo("  " + "; ".join(times))
        click.echo(f"  outcome: {ping.outcome or ping.state}" + (f" ({ping.error})" if ping.error else ""))
        return ping.outcome in ("acked", "acked_late")


def _serve_web(app: AppContext) -> Any:
    try:
        import uvicorn
        from web.serving import QuietServer

        from web.app import create_app
    except ImportError:
        log.warning("web app not available: answers through webhooks cannot arrive")
        return None
    server = QuietServer(uvicorn.Config(create_app(app.settings, app.engine, app.clock), host=app.settings.web_host,
                                           port=app.settings.web_port, log_level="warning", access_log=False))
    threading.Thread(target=server.run, name="web", daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:  # the webhooks must find it listening
        time.sleep(0.02)
    return server
