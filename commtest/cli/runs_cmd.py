"""``commtest runs list|show|ack|abort``."""
from __future__ import annotations

import logging

import click
from rich.table import Table
from sqlmodel import col, select

from commtest.db import read_session, session_scope
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

    with read_session(app.engine) as s:
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
    elif result.status == "after_close":
        click.echo(f"run {run_id} had closed ({result.run_status}): the answer is recorded as an event "
                   "but changes no verdict and no figure")
    else:
        click.echo(f"ping {ping_id} acknowledged ({how}) by {by or 'unnamed'}: recorded as manual, "
                   f"response {duration(result.response_ms)}")


@runs_group.command("record")
@click.argument("run_id", type=int)
@click.option("--org", "org", required=True, help="The organisation that answered (its code, e.g. LU-CNC).")
@click.option("--channel", default="manual", show_default=True, help="The channel of the check.")
@click.option("--contact-point", "contact_point", default=None,
              help="Its contact point's code, when the organisation has several on that channel.")
@click.option("--at", "at_text", required=True, help="When the answer came (ISO 8601, e.g. 2026-04-14T10:32:00+02:00).")
@click.option("--by", "by", required=True, help="Who answered at the centre.")
@click.option("--note", default="", help="What was said or how (radio channel, call sign...).")
def runs_record(run_id: int, org: str, channel: str, contact_point: str | None, at_text: str, by: str,
                note: str) -> None:
    """Record the answer to a manual check (radio, TETRA, satellite, call back) of ORG in RUN_ID.

    A manual check never answers by itself: without this record it ends `no_record` at its
    deadline. The record carries the time, who answered and who recorded it (you)."""
    from commtest.clock import parse_instant
    from commtest.models import ContactPoint
    from scheduler.records import ANSWERABLE, acknowledge

    app = app_context()
    who = whoami()
    try:
        at = parse_instant(at_text)
    except ValueError as exc:
        raise click.BadParameter(f"{at_text!r} is not an ISO 8601 moment such as 2026-04-14T10:32:00+02:00",
                                 param_hint="--at") from exc
    if at > app.clock.now():
        raise click.BadParameter("an answer cannot be in the future", param_hint="--at")
    with session_scope(app.engine, durable=True) as s:
        rows = s.exec(select(Ping, ContactPoint.code).join(ContactPoint, ContactPoint.id == Ping.contact_point_id)
                      .where(Ping.run_id == run_id, Ping.organisation_code == org, Ping.channel == channel)
                      .order_by(col(Ping.attempt))).all()
        if not rows:
            raise NotFoundError(f"run {run_id} has no {channel} check of {org}; `commtest runs show {run_id}` lists them")
        codes = sorted({code for _, code in rows})
        if contact_point is None and len(codes) > 1:
            raise click.BadParameter(f"{org} has several {channel} contact points in run {run_id}: "
                                     f"{', '.join(codes)}; name one", param_hint="--contact-point")
        chosen = [p for p, code in rows if contact_point in (None, code)]
        if not chosen:
            raise NotFoundError(f"{contact_point!r} is not a {channel} contact point of {org} in run {run_id}; "
                                f"expected one of {', '.join(codes)}")
        answerable = [p for p in chosen if p.state in ANSWERABLE or p.state == "acked"]
        if not answerable:
            raise CommtestError(f"the {channel} check of {org} in run {run_id} has no attempt to answer yet "
                                f"({', '.join(sorted({p.state for p in chosen}))}); record it once it was made")
        ping = answerable[-1]
        start = ping.sent_at or ping.dispatching_at or at
        if at < start:
            raise click.BadParameter(f"the attempt was made at {start.isoformat()}: an answer cannot come before it",
                                     param_hint="--at")
        result = acknowledge(s, ping, at, method="manual:record", actor=f"cli:{who}", by=by, note=note or None)
    if result.status == "already":
        click.echo(f"the {channel} check of {org} was already answered at {result.acked_at.isoformat()}; nothing changed")
    elif result.status == "after_close":
        click.echo(f"run {run_id} had closed ({result.run_status}): the record is kept as an event "
                   "but changes no verdict and no figure")
    else:
        click.echo(f"{org} {channel}: answer by {by} at {at.isoformat()} recorded by {who} (outcome manual)")


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
