"""``commtest daemon``: the scheduler (leader or standby), the web app and the mail reader in one process.

The kernel does not depend on the scheduler, channels, web or reports packages: they are
imported inside the command, which is where they are composed.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click

from commtest.context import AppContext

from .base import app_context, cli
from .playbook_cmd import sync_playbooks

log = logging.getLogger(__name__)

# What the daemon spends reading the playbook folder before it competes for leadership and
# serves the web app. Each file is bounded on its own (size, YAML, a template time budget),
# a folder of slow files is not: the leader reads what is left in its housekeeping.
PRE_LEAD_SYNC_SECONDS = 2.0


# ------------------------------------------------------------------------- daemon
@cli.command("daemon")
@click.option("--no-web", is_flag=True, help="Do not serve the web app (acknowledgement pages, webhooks).")
def daemon_cmd(no_web: bool) -> None:
    """Run the scheduler (as leader or standby) and the web app until SIGTERM/SIGINT."""
    from scheduler.daemon import Daemon, ExtraJob, playbook_syncer

    from channels.registry import ChannelSet
    from commtest.errors import ConfigError
    from scheduler.engine import unready_playbooks

    app = app_context()
    settings = app.settings
    # A sync bounded in total, so that the check below sees the playbooks of the folder (a
    # first start included); a hostile file is reported and skipped, a slow folder finished by
    # the leader's housekeeping. Runs of a playbook read only then are still refused at their
    # start when they need a kind without a provider.
    deferred = sync_playbooks(app, deadline=time.monotonic() + PRE_LEAD_SYNC_SECONDS)
    if deferred:
        log.warning("%d playbook file(s) not read in the %g s before leading (%s): the leader reads them in its "
                    "housekeeping", len(deferred), PRE_LEAD_SYNC_SECONDS, ", ".join(p.name for p in deferred))
    problems = unready_playbooks(app.engine, ChannelSet(settings, app.clock))
    if problems:
        raise ConfigError("the daemon does not start, so that no test runs half simulated or half sent:\n  "
                          + "\n  ".join(problems)
                          + "\n(or pause the schedule: `commtest schedule pause PLAYBOOK:KEY`)")
    extra: list[ExtraJob] = []
    try:
        from reports.monthly import generate_monthly  # noqa: F401

        extra.append(ExtraJob("directory-editions", lambda: directory_after_runs(app), "interval", {"seconds": 60}))
        extra.append(ExtraJob("monthly-report", lambda: _monthly_job(app), "cron",
                              {"day": 1, "hour": 6, "minute": 0, "timezone": ZoneInfo(settings.timezone)}))
    except ImportError:
        log.info("reports package not available: no monthly report job")
    daemon = Daemon(settings, app.engine, app.clock, extra_jobs=extra,
                    sync_playbooks=playbook_syncer(app.engine, settings.playbook_dir, app.clock,
                                                   max_bytes=settings.max_playbook_bytes))
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
            server.stop()
        if reader_stop is not None:
            reader_stop.set()
    if code:
        sys.exit(code)


class _Web:
    """The web app the daemon serves: a thread of its own (one worker), or uvicorn worker
    processes beside it (``COMMTEST_WEB_WORKERS`` > 1); ``stop`` ends either."""

    def __init__(self, server: Any = None, process: Any = None) -> None:
        self.server, self.process = server, process

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except Exception:  # noqa: BLE001 - a worker that does not stop is killed
                self.process.kill()


def _start_web(app: AppContext) -> _Web | None:
    try:
        import uvicorn
        from web.serving import QuietServer

        from web.app import create_app
    except ImportError:
        log.warning("web app not available; serving no acknowledgement pages")
        return None
    settings = app.settings
    if settings.web_workers > 1:
        return _start_web_workers(app)
    config = uvicorn.Config(create_app(settings, app.engine, app.clock), host=settings.web_host, proxy_headers=False,
                            port=settings.web_port, log_level="warning", access_log=False)
    server = QuietServer(config)
    thread = threading.Thread(target=server.run, name="web", daemon=True)
    thread.start()
    log.info("web app on http://%s:%s", settings.web_host, settings.web_port)
    return _Web(server=server)


def _start_web_workers(app: AppContext) -> _Web:
    """uvicorn's worker processes, each with the same settings (web.asgi). Forms signed by one
    must be accepted by another: without COMMTEST_SECRET_KEY they share a key drawn here."""
    import os
    import secrets
    import subprocess

    settings = app.settings
    env = dict(os.environ)
    if settings.secret_key is None:
        env["COMMTEST_SECRET_KEY"] = secrets.token_urlsafe(32)
    cmd = [sys.executable, "-m", "uvicorn", "web.asgi:create", "--factory", "--workers", str(settings.web_workers),
           "--host", settings.web_host, "--port", str(settings.web_port), "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(cmd, env=env)
    log.info("web app on http://%s:%s in %d worker processes", settings.web_host, settings.web_port,
             settings.web_workers)
    return _Web(process=process)


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


def directory_after_runs(app: AppContext) -> int | None:
    """After a run completed: a new directory edition, when something changed since the last.
    Returns the edition published (None: no run completed since, or nothing changed)."""
    import sqlalchemy as sa

    from commtest.models import DirectoryEdition, RunStatus, TestRun, UTCDateTime
    from reports.directory_report import publish_directory

    R, DE = TestRun.__table__, DirectoryEdition.__table__  # type: ignore[attr-defined]
    with app.engine.connect() as conn:
        last = conn.execute(sa.select(sa.type_coerce(sa.func.max(DE.c.created_at), UTCDateTime()))).scalar()
        q = sa.select(R.c.id).where(R.c.status == RunStatus.completed.value).order_by(R.c.finished_at.desc()).limit(1)
        if last is not None:
            q = q.where(R.c.finished_at > last)
        run_id = conn.execute(q).scalar()
    if run_id is None:
        return None
    report = publish_directory(app.engine, app.clock, run_id=run_id)
    if report.new_edition:
        log.info("directory edition %s published after run %s", report.edition_id, run_id)
        return report.edition_id
    return None


def _monthly_job(app: AppContext) -> None:
    """On the 1st: the previous month's report, e-mailed to the reviewers."""
    from reports.monthly import generate_monthly

    now = app.clock.now().astimezone(ZoneInfo(app.settings.timezone))
    prev = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    report = generate_monthly(app.engine, prev, app.clock, app.settings.timezone,
                              stale_after_days=app.settings.verified_max_age_days)
    log.info("monthly report %s generated", prev)
    if app.settings.reviewers:
        try:
            from reports.mailing import build_monthly_email
            from channels.email.smtp import send_message

            send_message(app.settings, build_monthly_email(report, app.settings))
            log.info("monthly report %s sent to %d reviewer(s)", prev, len(app.settings.reviewers))
        except ImportError:
            log.warning("e-mail channel not available: monthly report not sent")
