"""``commtest run PLAYBOOK --now``: start a test now (or plan it on paper with ``--dry-run``)."""
from __future__ import annotations

import logging
import sys
from datetime import timedelta
from typing import Any

import click
from rich.table import Table
from sqlmodel import col, select

from commtest.context import AppContext
from commtest.db import read_session
from commtest.errors import NotFoundError
from commtest.models import Playbook, RunStatus, TestRun

from .base import app_context, cli
from .playbook_cmd import sync_playbooks
from .runview import console, progress_counts, show_run, whoami

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------- run
@cli.command("run")
@click.argument("playbook_id")
@click.option("--now", "now_", is_flag=True, required=True, help="Start the test now.")
@click.option("--dry-run", is_flag=True, help="Plan and print every ping without sending anything.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Follow the run until it completes (when no daemon leads, this process drives it).")
@click.option("--by", "started_by", default="", help="Who starts it (recorded in the event log).")
def run_cmd(playbook_id: str, now_: bool, dry_run: bool, wait: bool, started_by: str) -> None:
    """Start a communication test of PLAYBOOK_ID now."""
    from scheduler.engine import RunEngine
    from scheduler.leader import leader_lock_for

    app = app_context()
    sync_playbooks(app)
    if dry_run:
        _dry_run(app, playbook_id)
        return
    who = started_by or whoami()
    probe = RunEngine(app.engine, app.settings, app.clock, actor=f"cli:{who}")
    try:
        probe.refuse_unconfigured(playbook_id)  # exit 2 before anything is created
    finally:
        probe.close()
    lock = leader_lock_for(app.settings.database_url)
    if lock.acquire(wait=False):
        # No daemon leads: this process is the leader for the duration of the run.
        runs = RunEngine(app.engine, app.settings, app.clock, leader_check=lock.check, actor=f"cli:{who}",
                         prepare_ahead=True)
        try:
            runs.recover()
            run_id = runs.create_run(playbook_id, started_by=who)
            planned = runs.start_run(run_id)
            click.echo(f"run {run_id} started: {planned} ping(s) planned")
            if not wait:
                click.echo("--no-wait: the run continues when a daemon starts (`commtest daemon`)")
                return
            _drive(runs, app, run_id)
        finally:
            runs.close()
            lock.release()
        show_run(app, run_id, pings=False)
        return
    runs_q = RunEngine(app.engine, app.settings, app.clock, actor=f"cli:{who}")
    try:
        run_id = runs_q.create_run(playbook_id, started_by=who)
    finally:
        runs_q.close()
    click.echo(f"run {run_id} queued; the daemon ({lock.describe_holder()}) starts it within a tick")
    if wait:
        _follow(app, run_id)
        show_run(app, run_id, pings=False)


def _drive(runs: Any, app: AppContext, run_id: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("run {task.fields[run]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("pings settled"), TimeElapsedColumn(), transient=False,
                  disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("run", total=None, run=run_id)
        while True:
            runs.tick()
            done, total, status = progress_counts(app, run_id)
            progress.update(task, completed=done, total=total)
            # While this process leads it drives every run, including ones other coordinators
            # queued meanwhile: it only lets go when none is left open.
            if status not in (RunStatus.running.value, RunStatus.planned.value) and not _other_open_runs(app):
                break
            app.clock.sleep(app.settings.tick_seconds)


def _other_open_runs(app: AppContext) -> int:
    from sqlalchemy import func

    now = app.clock.now()
    with read_session(app.engine) as s:
        running = s.exec(select(func.count()).select_from(TestRun).where(
            TestRun.status == RunStatus.running.value)).one()
        due = s.exec(select(func.count()).select_from(TestRun).where(
            TestRun.status == RunStatus.planned.value, col(TestRun.fire_at) <= now)).one()
    return int(running) + int(due)


def _follow(app: AppContext, run_id: int) -> None:
    last = None
    while True:
        done, total, status = progress_counts(app, run_id)
        if (done, total, status) != last:
            click.echo(f"run {run_id}: {status}, {done}/{total} pings settled", err=True)
            last = (done, total, status)
        if status not in (RunStatus.running.value, RunStatus.planned.value):
            return
        app.clock.sleep(max(1.0, app.settings.tick_seconds))


def _duration(value: timedelta) -> str:
    from commtest.i18n import format_duration

    return format_duration(value.total_seconds() * 1000, "en")


def _dry_run(app: AppContext, playbook_id: str) -> None:
    from scheduler.planner import initial_plan
    from scheduler.specs import spec_for_revision

    with read_session(app.engine) as s:
        pb = s.get(Playbook, playbook_id)
        if pb is None or pb.current_revision_id is None:
            raise NotFoundError(f"playbook {playbook_id!r} not found; `commtest playbook list` shows the known ones")
        spec = spec_for_revision(s, pb.current_revision_id)
        planned, gaps = initial_plan(s, spec)
    table = Table(title=f"dry run of {playbook_id}: {len(planned)} ping(s) would be sent now (nothing is sent)")
    for c in ("organisation", "contact point", "step", "channel", "address", "language", "sent after", "deadline"):
        table.add_column(c)
    for p in planned:
        table.add_row(p.target.organisation_code, p.target.contact_name, p.step.id, p.step.channel, p.address,
                      p.target.language, f"+{_duration(p.step.start_after)}", _duration(p.step.ack_deadline))
    screen = console()
    screen.print(table)
    later = [st for st in spec.steps if st not in spec.initial_steps()]
    if later:
        screen.print("only on escalation: " + ", ".join(f"{st.id} ({st.channel})" for st in later))
    for kind in spec.channels():
        status = app.settings.channel_status(kind)
        if status != "real":
            screen.print(f"[yellow]{kind}[/yellow]: {status}" + (
                " — a real run would be refused: set COMMTEST_CHANNELS for it" if status == "not configured"
                else " — answers would be SIMULATED, not evidence"))
    for target, step, reason in gaps:
        who = target.contact_point_code if target else ""
        screen.print(f"[yellow]gap[/yellow]: {step.channel} {who} {reason}")
