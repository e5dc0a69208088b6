"""``commtest daemon``, ``run``, ``schedule ...`` and ``runs ...``.

The kernel does not depend on the scheduler, channels or web packages: they are imported
inside the commands, which is where they are composed.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.table import Table
from sqlmodel import col, select

from commtest.context import AppContext
from commtest.db import session_scope
from commtest.errors import CommtestError, NotFoundError
from commtest.models import Event, Ping, Playbook, PlaybookRevision, RunStatus, Schedule, TestRun

from .base import app_context, cli

log = logging.getLogger(__name__)


def _console() -> Console:
    probe = Console()
    # Piped output (CI logs, `| less`) gets a wide table rather than wrapped cells.
    return Console(highlight=False, soft_wrap=False, width=probe.width if probe.is_terminal else 180)


def sync_playbooks(app: AppContext, *, quiet: bool = False) -> None:
    """Every command that needs playbooks reads the folder first."""
    from playbooks.store import sync_folder

    report = sync_folder(app.engine, app.settings.playbook_dir, app.clock)
    if not quiet:
        for path, error in report.invalid:
            click.echo(f"warning: {path} is invalid and was not loaded (its last good revision stays in use):\n{error}", err=True)


def _local(dt: datetime | None, tz: str) -> str:
    if dt is None:
        return "-"
    return dt.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    secs = round(ms / 1000)
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


# ------------------------------------------------------------------------- daemon
@cli.command("daemon")
@click.option("--no-web", is_flag=True, help="Do not serve the web app (acknowledgement pages, webhooks).")
def daemon_cmd(no_web: bool) -> None:
    """Run the scheduler (as leader or standby) and the web app until SIGTERM/SIGINT."""
    from scheduler.daemon import Daemon, ExtraJob, playbook_syncer

    app = app_context()
    settings = app.settings
    sync_playbooks(app)
    extra: list[ExtraJob] = []
    try:
        from reports.monthly import generate_monthly  # noqa: F401

        extra.append(ExtraJob("monthly-report", lambda: _monthly_job(app), "cron",
                              {"day": 1, "hour": 6, "minute": 0, "timezone": ZoneInfo(settings.timezone)}))
    except ImportError:
        log.info("reports package not available: no monthly report job")
    daemon = Daemon(settings, app.engine, app.clock, extra_jobs=extra,
                    sync_playbooks=playbook_syncer(app.engine, settings.playbook_dir, app.clock))
    server = None if no_web else _start_web(app)
    reader_stop = _start_mail_reader(app)

    def _stop(signum: int, _frame: Any) -> None:
        log.info("received %s: finishing in-flight provider calls, then stopping", signal.Signals(signum).name)
        daemon.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        code = daemon.run()
    finally:
        if server is not None:
            server.should_exit = True
        if reader_stop is not None:
            reader_stop.set()
    if code:
        sys.exit(code)


def _start_web(app: AppContext) -> Any:
    try:
        import uvicorn

        from web.app import create_app
    except ImportError:
        log.warning("web app not available; serving no acknowledgement pages")
        return None
    config = uvicorn.Config(create_app(app.settings, app.engine, app.clock), host=app.settings.web_host,
                            port=app.settings.web_port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    log.info("web app on http://%s:%s", app.settings.web_host, app.settings.web_port)
    return server


def _start_mail_reader(app: AppContext) -> threading.Event | None:
    """The IMAP reader (replies, out-of-office, bounces) when a mailbox is configured.

    Safe on every replica: each message is recorded once (``InboundMessage``)."""
    if not app.settings.imap_host:
        log.info("no IMAP mailbox configured (COMMTEST_IMAP_HOST): e-mail replies are not read")
        return None
    from channels.email.imap import ImapSource
    from scheduler.inbound import serve_inbound

    stop = threading.Event()
    source = ImapSource(app.settings)
    thread = threading.Thread(target=serve_inbound, args=(app.engine, app.clock, app.settings, source, stop),
                              name="mail-reader", daemon=True)
    thread.start()
    log.info("reading replies from %s:%s/%s", app.settings.imap_host, app.settings.imap_port, app.settings.imap_mailbox)
    return stop


def _monthly_job(app: AppContext) -> None:
    """On the 1st: the previous month's report, e-mailed to the reviewers."""
    from reports.monthly import generate_monthly

    now = app.clock.now().astimezone(ZoneInfo(app.settings.timezone))
    prev = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    report = generate_monthly(app.engine, prev, app.clock)
    log.info("monthly report %s generated", prev)
    if app.settings.reviewers:
        try:
            from reports.mailing import build_monthly_email
            from channels.email.smtp import send_message

            send_message(app.settings, build_monthly_email(report, app.settings))
            log.info("monthly report %s sent to %d reviewer(s)", prev, len(app.settings.reviewers))
        except ImportError:
            log.warning("e-mail channel not available: monthly report not sent")


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
    who = started_by or _whoami()
    lock = leader_lock_for(app.settings.database_url)
    if lock.acquire(wait=False):
        # No daemon leads: this process is the leader for the duration of the run.
        runs = RunEngine(app.engine, app.settings, app.clock, leader_check=lock.check, actor=f"cli:{who}")
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
        _show(app, run_id, pings=False)
        return
    runs_q = RunEngine(app.engine, app.settings, app.clock, actor=f"cli:{who}")
    try:
        run_id = runs_q.create_run(playbook_id, started_by=who)
    finally:
        runs_q.close()
    click.echo(f"run {run_id} queued; the daemon ({lock.describe_holder()}) starts it within a tick")
    if wait:
        _follow(app, run_id)
        _show(app, run_id, pings=False)


def _whoami() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _progress_counts(app: AppContext, run_id: int) -> tuple[int, int, str]:
    from scheduler.records import OPEN_STATES

    with session_scope(app.engine) as s:
        states = s.exec(select(Ping.state).where(Ping.run_id == run_id)).all()
        run = s.get(TestRun, run_id)
        status = run.status if run else "?"
    return sum(1 for x in states if x not in OPEN_STATES), len(states), status


def _drive(runs: Any, app: AppContext, run_id: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("run {task.fields[run]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("pings settled"), TimeElapsedColumn(), transient=False,
                  disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task("run", total=None, run=run_id)
        while True:
            runs.tick()
            done, total, status = _progress_counts(app, run_id)
            progress.update(task, completed=done, total=total)
            # While this process leads it drives every run, including ones other coordinators
            # queued meanwhile: it only lets go when none is left open.
            if status not in (RunStatus.running.value, RunStatus.planned.value) and not _other_open_runs(app):
                break
            app.clock.sleep(app.settings.tick_seconds)


def _other_open_runs(app: AppContext) -> int:
    from sqlalchemy import func

    now = app.clock.now()
    with session_scope(app.engine) as s:
        running = s.exec(select(func.count()).select_from(TestRun).where(
            TestRun.status == RunStatus.running.value)).one()
        due = s.exec(select(func.count()).select_from(TestRun).where(
            TestRun.status == RunStatus.planned.value, col(TestRun.fire_at) <= now)).one()
    return int(running) + int(due)


def _follow(app: AppContext, run_id: int) -> None:
    last = None
    while True:
        done, total, status = _progress_counts(app, run_id)
        if (done, total, status) != last:
            click.echo(f"run {run_id}: {status}, {done}/{total} pings settled", err=True)
            last = (done, total, status)
        if status not in (RunStatus.running.value, RunStatus.planned.value):
            return
        app.clock.sleep(max(1.0, app.settings.tick_seconds))


def _dry_run(app: AppContext, playbook_id: str) -> None:
    from playbooks.durations import format_duration
    from scheduler.planner import initial_plan
    from scheduler.specs import spec_for_revision

    with session_scope(app.engine) as s:
        pb = s.get(Playbook, playbook_id)
        if pb is None or pb.current_revision_id is None:
            raise NotFoundError(f"playbook {playbook_id!r} not found; `commtest playbook list` shows the known ones")
        spec = spec_for_revision(s, pb.current_revision_id)
        planned, gaps = initial_plan(s, spec)
        s.rollback()
    table = Table(title=f"dry run of {playbook_id}: {len(planned)} ping(s) would be sent now (nothing is sent)")
    for c in ("organisation", "contact point", "step", "channel", "address", "language", "sent after", "deadline"):
        table.add_column(c)
    for p in planned:
        table.add_row(p.target.organisation_code, p.target.contact_name, p.step.id, p.step.channel, p.address,
                      p.target.language, f"+{format_duration(p.step.start_after)}", format_duration(p.step.ack_deadline))
    console = _console()
    console.print(table)
    later = [st for st in spec.steps if st not in spec.initial_steps()]
    if later:
        console.print("only on escalation: " + ", ".join(f"{st.id} ({st.channel})" for st in later))
    for target, step, reason in gaps:
        who = target.contact_point_code if target else ""
        console.print(f"[yellow]gap[/yellow]: {step.channel} {who} {reason}")


# ------------------------------------------------------------------------- schedules
@cli.group("schedule")
def schedule_group() -> None:
    """Schedules of the playbooks (built from the playbook files)."""


def _find_schedule(s: Any, ref: str) -> Schedule:
    if ":" in ref:
        pid, key = ref.split(":", 1)
        row = s.exec(select(Schedule).where(Schedule.playbook_id == pid, Schedule.key == key)).first()
    elif ref.isdigit():
        row = s.get(Schedule, int(ref))
    else:
        row = None
    if row is None:
        raise NotFoundError(f"schedule {ref!r} not found; give PLAYBOOK_ID:KEY as `commtest schedule list` shows")
    return row  # type: ignore[no-any-return]


@schedule_group.command("list")
def schedule_list() -> None:
    """Every schedule with its next planned moment (unannounced: only the window)."""
    from scheduler.specs import spec_for_revision
    from scheduler.timing import plan_horizon

    app = app_context()
    sync_playbooks(app)
    now = app.clock.now()
    table = Table(title="schedules")
    for c in ("schedule", "state", "kind", "next", "last fired", "description"):
        table.add_column(c)
    with session_scope(app.engine) as s:
        for sch in s.exec(select(Schedule).order_by(col(Schedule.playbook_id), col(Schedule.key))).all():
            spec = spec_for_revision(s, sch.revision_id)
            sspec = next((x for x in spec.schedules if x.key == sch.key), None)
            tz = (sspec.timezone if sspec and sspec.timezone else spec.timezone)
            planned = s.exec(select(TestRun).where(TestRun.schedule_id == sch.id,
                                                   TestRun.status == RunStatus.planned.value)).first()
            if planned is not None and sch.announced:
                nxt = _local(planned.fire_at, tz)
            elif planned is not None and sspec is not None and sspec.window is not None and planned.fire_at:
                # Unannounced: say no more than the playbook does (the month and the window),
                # never the drawn day or moment.
                month = planned.fire_at.astimezone(ZoneInfo(tz)).strftime("%B %Y")
                w = sspec.window
                nxt = (f"{month}, {_days(w.days)} {w.start:%H:%M}-{w.end:%H:%M} (moment drawn, not shown)"
                       if sspec.months else f"on a {sspec.cron!r} day, {w.start:%H:%M}-{w.end:%H:%M} (moment drawn, not shown)")
            elif sspec is not None:
                occ = plan_horizon(sspec, spec.timezone, now, now + timedelta(days=800), limit=1)
                nxt = (_local(occ[0].fire_at, tz) if occ[0].drawn else f"window from {_local(occ[0].fire_at, tz)}") if occ else "never"
            else:
                nxt = "-"
            table.add_row(f"{sch.playbook_id}:{sch.key}", "paused" if sch.paused else "active",
                          "announced" if sch.announced else "unannounced", nxt, _local(sch.last_fire_at, tz),
                          sch.description)
    _console().print(table)


def _days(days: list[str]) -> str:
    week = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    if days == week[: len(days)] and len(days) > 2:
        return f"{days[0]}-{days[-1]}"
    return ",".join(days)


def _set_paused(ref: str, paused: bool) -> None:
    app = app_context()
    sync_playbooks(app, quiet=True)
    from commtest import events as ev

    with session_scope(app.engine) as s:
        sch = _find_schedule(s, ref)
        sch.paused = paused
        sch.updated_at = app.clock.now()
        s.add(sch)
        if paused:
            # A planned, not yet started run of a paused schedule is withdrawn.
            for run in s.exec(select(TestRun).where(TestRun.schedule_id == sch.id,
                                                    TestRun.status == RunStatus.planned.value)).all():
                run.status = RunStatus.aborted.value
                run.finished_at = app.clock.now()
                s.add(run)
                ev.record_event(s, at=app.clock.now(), actor=f"cli:{_whoami()}", kind=ev.RUN_ABORTED, run_id=run.id,
                                by=_whoami(), reason="schedule paused before the run started")
    click.echo(f"schedule {ref} {'paused' if paused else 'resumed'}")


@schedule_group.command("pause")
@click.argument("schedule")
def schedule_pause(schedule: str) -> None:
    """Pause SCHEDULE (PLAYBOOK_ID:KEY): it plans no more runs."""
    _set_paused(schedule, True)


@schedule_group.command("resume")
@click.argument("schedule")
def schedule_resume(schedule: str) -> None:
    """Resume SCHEDULE (PLAYBOOK_ID:KEY)."""
    _set_paused(schedule, False)


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
            fire = "(unannounced, not shown)" if r.status == RunStatus.planned.value and not r.announced and r.trigger == "schedule" else _local(r.fire_at, tz)
            table.add_row(str(r.id), r.playbook_id, r.trigger, r.status, fire, _local(r.started_at, tz),
                          _local(r.finished_at, tz), str(n))
    _console().print(table)


@runs_group.command("show")
@click.argument("run_id", type=int)
@click.option("--pings", "with_pings", is_flag=True, help="Also list every ping.")
def runs_show(run_id: int, with_pings: bool) -> None:
    """A table per organisation and channel: sent, acknowledged, response time, outcome."""
    _show(app_context(), run_id, pings=with_pings)


def _show(app: AppContext, run_id: int, *, pings: bool) -> None:
    from scheduler.specs import spec_for_revision
    from scheduler.summary import run_summary

    console = _console()
    with session_scope(app.engine) as s:
        run = s.get(TestRun, run_id)
        if run is None:
            raise NotFoundError(f"run {run_id} not found; `commtest runs list` shows the runs")
        spec = spec_for_revision(s, run.revision_id)
        rev = s.get(PlaybookRevision, run.revision_id)
        tz = spec.timezone
        summary = run_summary(s, run_id)
        console.print(f"run {run.id}: {spec.title} ({run.playbook_id} @ {rev.content_hash[:12] if rev else '?'})")
        console.print(f"status {run.status}; trigger {run.trigger}; started {_local(run.started_at, tz)}; "
                      f"finished {_local(run.finished_at, tz)}")
        table = Table(title="per organisation and channel")
        for c in ("organisation", "channel", "sent", "acknowledged", "response time", "target", "outcome", "verdict"):
            table.add_column(c)
        for r in summary.rows:
            colour = {"pass": "green", "fail": "red", "late": "yellow"}.get(r.verdict, "")
            table.add_row(r.organisation_code, r.channel, str(r.sent), str(r.acked), _duration(r.response_ms),
                          _duration(r.target_s * 1000 if r.target_s else None), r.outcome,
                          f"[{colour}]{r.verdict}[/{colour}]" if colour else r.verdict)
        console.print(table)
        all_pings = s.exec(select(Ping).where(Ping.run_id == run_id).order_by(col(Ping.id))).all()
        flagged = [p for p in all_pings if p.ack_suspicious]
        for p in flagged:
            console.print(f"[yellow]observation[/yellow]: ping {p.id} ({p.organisation_code} {p.channel}) was "
                          f"acknowledged within {app.settings.ack_suspicious_seconds:g}s of delivery: possibly "
                          f"automated (mail security scanner?)")
        unknown = [p for p in all_pings if p.state == "unknown"]
        for p in unknown:
            console.print(f"[red]check[/red]: ping {p.id} ({p.organisation_code} {p.channel} to {p.address}) was "
                          "being sent during a crash: it may or may not have arrived; it was not resent")
        gaps = s.exec(select(Event).where(Event.run_id == run_id, Event.kind == "run.gap")).all()
        for g in gaps:
            console.print(f"[yellow]gap[/yellow]: {g.organisation_code or ''} {g.channel}: {g.data.get('reason', '')}")
        if pings:
            from commtest.models import ContactPoint
            from scheduler.records import _response_ms

            # Officers know contact points by code (BE-NCCN/crisis-desk), not by row id.
            cp_ids = {p.contact_point_id for p in all_pings}
            cp_codes = dict(s.exec(select(ContactPoint.id, ContactPoint.code)
                                   .where(col(ContactPoint.id).in_(cp_ids))).all()) if cp_ids else {}
            t = Table(title="pings")
            for c in ("ping", "organisation", "contact point", "step", "channel", "attempt", "address", "state",
                      "outcome", "sent", "acknowledged", "response", "method"):
                t.add_column(c)
            for p in all_pings:
                cp_code = cp_codes.get(p.contact_point_id, str(p.contact_point_id))
                t.add_row(str(p.id), p.organisation_code, cp_code, p.step, p.channel, str(p.attempt),
                          p.address, p.state, p.outcome or "-", _local(p.sent_at, tz)[11:19] if p.sent_at else "-",
                          _local(p.acked_at, tz)[11:19] if p.acked_at else "-", _duration(_response_ms(p)),
                          (p.ack_method or "-") + (" (!)" if p.ack_suspicious else ""))
            console.print(t)


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
    who = _whoami()
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
                   f"response {_duration(result.response_ms)}")


@runs_group.command("abort")
@click.argument("run_id", type=int)
@click.option("--reason", default="", help="Why (recorded in the event log).")
def runs_abort(run_id: int, reason: str) -> None:
    """Abort RUN_ID: pings not sent yet are cancelled; acknowledgements still count."""
    from scheduler.engine import RunEngine

    app = app_context()
    runs = RunEngine(app.engine, app.settings, app.clock, actor=f"cli:{_whoami()}")
    try:
        cancelled = runs.abort_run(run_id, by=_whoami(), reason=reason)
    finally:
        runs.close()
    click.echo(f"run {run_id} aborted; {cancelled} ping(s) not sent were cancelled")


__all__ = ["sync_playbooks"]
_ = CommtestError
