"""``commtest runs list|show|ack|abort``."""
from __future__ import annotations

import logging

import click
from rich.table import Table
from sqlmodel import col, select

from commtest.db import session_scope
from commtest.errors import CommtestError, NotFoundError
from commtest.models import Ping, RunStatus, TestRun

from .base import app_context, cli
from .runview import console, duration, local, show_run, whoami

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------- runs
@cli.group("runs")
def runs_group() -> None:
    """Test runs: list, show, abort."""


@runs_group.command("list")
@click.option("--limit", default=20, show_default=True)
def runs_list(limit: int) -> None:
    """The most recent runs."""
    app = app_context()
    tz = app.settings.timezone
    table = Table(title="runs")
    for c in ("run", "playbook", "trigger", "status", "fire time", "started", "finished", "pings"):
        table.add_column(c)
    from sqlalchemy import func

    with session_scope(app.engine) as s:
        runs = s.exec(select(TestRun).order_by(col(TestRun.id).desc()).limit(limit)).all()
        for r in runs:
            n = s.exec(select(func.count()).select_from(Ping).where(Ping.run_id == r.id)).one()
            fire = "(unannounced, not shown)" if r.status == RunStatus.planned.value and not r.announced and r.trigger == "schedule" else local(r.fire_at, tz)
            table.add_row(str(r.id), r.playbook_id, r.trigger, r.status, fire, local(r.started_at, tz),
                          local(r.finished_at, tz), str(n))
    console().print(table)


@runs_group.command("show")
@click.argument("run_id", type=int)
@click.option("--pings", "with_pings", is_flag=True, help="Also list every ping.")
def runs_show(run_id: int, with_pings: bool) -> None:
    """A table per organisation and channel: sent, acknowledged, response time, outcome."""
    show_run(app_context(), run_id, pings=with_pings)


@runs_group.command("ack")
@click.argument("run_id", type=int)
@click.argument("ping_id", type=int)
@click.option("--how", required=True, help="How the answer came, e.g. radio, satellite phone, call back.")
@click.option("--by", "by", default="", help="Who answered at the centre.")
@click.option("--at", "at_text", default=None, help="When (ISO 8601; default now).")
def runs_ack(run_id: int, ping_id: int, how: str, by: str, at_text: str | None) -> None:
    """Record an acknowledgement received outside commtest (outcome: manual)."""
    from commtest.clock import parse_instant
    from scheduler.records import acknowledge

    app = app_context()
    who = whoami()
    try:
        at = parse_instant(at_text) if at_text else app.clock.now()
    except ValueError as exc:
        raise click.BadParameter(f"{at_text!r} is not an ISO 8601 moment such as 2026-04-14T10:32:00+02:00",
                                 param_hint="--at") from exc
    if at > app.clock.now():
        raise click.BadParameter("an acknowledgement cannot be in the future", param_hint="--at")
    with session_scope(app.engine, durable=True) as s:
        ping = s.get(Ping, ping_id)
        if ping is None or ping.run_id != run_id:
            raise NotFoundError(f"run {run_id} has no ping {ping_id}; `commtest runs show {run_id} --pings` lists them")
        if ping.state in ("pending", "cancelled"):
            raise CommtestError(f"ping {ping_id} was not sent ({ping.state}); nothing to acknowledge")
        # An ``unknown`` ping (crash while sending) may well have arrived: the coordinator
        # who checked with the centre records the answer here.
        start = ping.sent_at or ping.dispatching_at or at
        result = acknowledge(s, ping, max(at, start), method=f"manual:{how}"[:32], actor=f"cli:{who}",
                             by=by or None)
    if result.status == "already":
        click.echo(f"ping {ping_id} was already acknowledged at {result.acked_at.isoformat()}; nothing changed")
    else:
        click.echo(f"ping {ping_id} acknowledged ({how}) by {by or 'unnamed'}: recorded as manual, "
                   f"response {duration(result.response_ms)}")


@runs_group.command("abort")
@click.argument("run_id", type=int)
@click.option("--reason", default="", help="Why (recorded in the event log).")
def runs_abort(run_id: int, reason: str) -> None:
    """Abort RUN_ID: pings not sent yet are cancelled; acknowledgements still count."""
    from scheduler.engine import RunEngine

    app = app_context()
    runs = RunEngine(app.engine, app.settings, app.clock, actor=f"cli:{whoami()}")
    try:
        cancelled = runs.abort_run(run_id, by=whoami(), reason=reason)
    finally:
        runs.close()
    click.echo(f"run {run_id} aborted; {cancelled} ping(s) not sent were cancelled")
