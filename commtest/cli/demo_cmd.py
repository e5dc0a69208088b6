"""``commtest demo``: a whole communication test, end to end, in about a minute.

Everything is real except the far side: a fresh SQLite database, the sample directory
and the shipped playbook, the daemon as leader, the web app, a local SMTP server, the
Twilio providers against a local fake of Twilio, and sandbox providers for video: the duty
officers are simulated (some answer quickly, some late, one never, one voicemail).
Simulated time runs ``--speed`` times faster than the wall clock so a 40-minute
playbook fits in about a minute; every component sees the same simulated clock.
"""
from __future__ import annotations

import logging
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import Any

import click

from commtest.clock import ScaledClock
from commtest.context import AppContext
from commtest.settings import load_settings

from .base import cli

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = "benelux-nrw-crisis-centres"

# How the fictional duty officers answer the sandbox channels (times are simulated). The phone
# and SMS officers are played by the fake Twilio: channels.twilio.demo.
OFFICERS: dict[str, Any] = {
    "default": {"behaviour": "ack", "after": "90s"},
    "rules": [
        # (the video rooms and the CAP partner are fakes of their own: channels.video.demo)
    ],
}


# E-mail goes through a real local SMTP server; these officers read it and answer through
# the real acknowledgement page (GET, then POST) or by replying (read back from the mailbox).
MAIL_OFFICERS: dict[str, tuple[str, float, str]] = {
    # address: (how, after simulated seconds, who)
    "permanence@nccn.example": ("link", 180, "J. Peeters (fictional)"),
    "dienstdoende@ncc.example": ("reply", 120, "S. de Vries (fictional)"),
    "permanence@cnc.example": ("link", 18 * 60, "C. Weber (fictional)"),  # late: the deadline is 15 minutes
    # lagedienst@im-nrw.example never answers the e-mail
}


class MailOfficers:
    """Simulated duty officers reading the local SMTP server's mailbox."""

    def __init__(self, server: Any, clock: Any, smtp_port: int, stop: threading.Event) -> None:
        self.server, self.clock, self.smtp_port, self.stop = server, clock, smtp_port, stop
        self.done: set[str] = set()
        self.log: list[str] = []

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    self._read_mail(client)
                except Exception as exc:  # keep the officers alive, and say what went wrong
                    self.log.append(f"(officer simulation error, retrying: {type(exc).__name__}: {exc})")
                self.stop.wait(0.1)

    def _read_mail(self, client: Any) -> None:
        import re
        import smtplib

        from channels.email.message import build_reply
        from web.officer import acknowledge_by_link

        for msg in self.server.messages():
            key = str(msg.get("Message-ID"))
            to = str(msg.get("To", "")).strip().lower()
            if key in self.done or "X-Commtest-Ping" not in msg or to not in MAIL_OFFICERS:
                continue
            how, after, who = MAIL_OFFICERS[to]
            sent = _parse_date(msg.get("Date"))
            if sent is None or (self.clock.now() - sent).total_seconds() < after:
                continue
            self.done.add(key)
            body = msg.get_body(preferencelist=("plain",))
            text = body.get_content() if body is not None else ""
            if how == "link":
                m = re.search(r"https?://\S+/ack/[A-Za-z0-9_-]+", text)
                if m:
                    r = acknowledge_by_link(client, m.group(0), who)
                    self.log.append(f"{to}: opened the link and pressed the button (HTTP {r.status_code})")
            else:
                reply = build_reply(msg, f"{who} <{to}>", "Ontvangen, de verbinding werkt. Groet, de dienstdoende.")
                with smtplib.SMTP("127.0.0.1", self.smtp_port) as smtp:
                    smtp.send_message(reply)
                self.log.append(f"{to}: replied to the e-mail")


def _parse_date(value: Any) -> Any:
    from email.utils import parsedate_to_datetime

    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError):
        return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@cli.command("demo")
@click.option("--speed", default=60.0, show_default=True, help="How many times faster than real time the demo runs.")
@click.option("--dir", "workdir", type=click.Path(path_type=Path), default=Path("var/demo"), show_default=True,
              help="Where the demo keeps its database, mail and reports (emptied first).")
def demo_cmd(speed: float, workdir: Path) -> None:
    """Run a whole communication test on SQLite with sandbox providers and print the result."""
    from channels.registry import ChannelSet
    from channels.sandbox import KINDS_SANDBOX, SandboxChannel, SandboxRecord, SandboxScript
    from commtest.directory import import_directory
    from playbooks.store import sync_folder
    from scheduler.daemon import Daemon, playbook_syncer
    from scheduler.engine import RunEngine

    from .runview import show_run

    logging.getLogger().setLevel(logging.WARNING)
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    port = _free_port()
    smtp_port = _free_port()
    from channels.twilio.demo import TwilioDemo

    clock = ScaledClock(speed)
    phones = TwilioDemo.start(clock, f"http://127.0.0.1:{port}")  # the fake Twilio and its officers
    settings = load_settings(
        sandbox=True,  # the officers are simulated: every figure of this run is marked SIMULATED
        channels={"email": "smtp", **phones.channels},
        **phones.settings,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_security="none",
        database_url=f"sqlite:///{workdir / 'commtest.db'}",
        tick_seconds=0.2,
        sandbox_log=workdir / "sandbox-sent.jsonl",
        report_dir=workdir / "reports",
        web_port=port,
        public_base_url=f"http://127.0.0.1:{port}",
        secret_key=secrets.token_urlsafe(32),  # one process serves every page of the demo
        playbook_dir=REPO / "playbooks" if (REPO / "playbooks").is_dir() else load_settings().playbook_dir,
    )
    from channels.video.demo import DemoLinks  # video through a fake Jitsi, CAP through a fake partner

    links = DemoLinks.start(settings, clock, workdir, REPO / "playbooks" / f"{PLAYBOOK}.yaml")
    settings = links.settings
    app = AppContext(settings=settings, clock=clock)
    t0 = time.monotonic()

    click.echo(f"1. database {workdir / 'commtest.db'} (SQLite, migrated)")
    summary = import_directory(app.engine, REPO / "data" / "sample-directory.yaml")
    click.echo(f"2. sample directory imported: {summary.count('organisations', 'created')} organisations, "
               f"{summary.count('contact_points', 'created')} contact points, "
               f"{summary.count('endpoints', 'created')} endpoints (all fictional)")
    sync_folder(app.engine, settings.playbook_dir, clock, max_bytes=settings.max_playbook_bytes)
    click.echo(f"3. playbook {links.playbook_id} (the shipped {PLAYBOOK} with a CAP step) loaded from "
               f"{settings.playbook_dir}")

    from channels.email.devserver import DevSmtpServer
    from channels.email.maildir import MaildirSource
    from scheduler.inbound import serve_inbound
    from web.app import create_app
    import uvicorn
    from web.serving import QuietServer

    mail = DevSmtpServer("127.0.0.1", smtp_port, workdir / "mail")
    mail.start()
    web = QuietServer(uvicorn.Config(create_app(settings, app.engine, clock), host="127.0.0.1", port=port,
                                        log_level="warning", access_log=False))
    threading.Thread(target=web.run, name="web", daemon=True).start()
    stop = threading.Event()
    threading.Thread(target=serve_inbound, args=(app.engine, clock, settings.model_copy(update={"imap_poll_seconds": 0.2}),
                                                 MaildirSource(workdir / "mail"), stop), name="mail-reader",
                     daemon=True).start()
    officers = MailOfficers(mail, clock, smtp_port, stop)
    threading.Thread(target=officers.run, name="officers", daemon=True).start()
    click.echo(f"   local SMTP server on 127.0.0.1:{smtp_port} (mail kept in {workdir / 'mail'}), "
               f"web app on {settings.public_base_url}")
    from .demo_console import after_the_run, announce, before_the_run, demo_login

    announce(settings.public_base_url, demo_login(app))

    script = SandboxScript.from_data(OFFICERS, "demo officers")
    record = SandboxRecord(settings.sandbox_log)
    from channels.email.smtp import SmtpChannel

    # The e-mail really goes through SMTP, but simulated officers read and answer it: simulated too.
    overrides: dict[str, Any] = {k: SandboxChannel(k, clock, script, record) for k in KINDS_SANDBOX
                                 if k not in ("email", "voice", "sms")}
    overrides["email"] = SmtpChannel(settings, clock, simulated=True)
    overrides.update(phones.providers(settings, clock))  # real Twilio providers, against the fake
    overrides.update(links.channels())
    links.run(mail)
    channels = ChannelSet(settings, clock, overrides)
    daemon = Daemon(settings, app.engine, clock, channels=channels,
                    sync_playbooks=playbook_syncer(app.engine, settings.playbook_dir, clock,
                                                   max_bytes=settings.max_playbook_bytes))
    thread = threading.Thread(target=daemon.run, name="daemon", daemon=True)
    thread.start()
    if not daemon.is_leader.wait(30):
        raise click.ClickException("the daemon did not become leader")
    click.echo(f"4. daemon leading; simulated time runs {speed:g}x faster than real time "
               "(it also planned the playbook's own unannounced spring and autumn tests)")

    before_the_run()
    queue = RunEngine(app.engine, settings, clock, actor="demo")
    run_id = queue.create_run(links.playbook_id, started_by="demo coordinator")
    queue.close()
    click.echo(f"5. test run {run_id} started now by the demo coordinator; the duty officers are answering...")
    from .runview import progress_counts

    start_sim = clock.now()
    last = None
    while True:
        done, total, status = progress_counts(app, run_id)
        if (done, total) != last:
            mins = (clock.now() - start_sim).total_seconds() / 60
            click.echo(f"   +{mins:4.1f} min simulated: {done}/{total} pings settled ({status})")
            last = (done, total)
        if status not in ("running", "planned"):
            break
        if time.monotonic() - t0 > 600:
            raise click.ClickException("the demo run did not finish in 10 minutes")
        time.sleep(0.5)
    daemon.stop()
    thread.join(30)
    stop.set()
    after_the_run(settings.public_base_url)
    web.should_exit = True
    links.stop()
    mail.stop()
    phones.stop()
    click.echo("6. run completed; what the e-mail, video and CAP officers did:")
    for line in officers.log + links.log:
        click.echo(f"   {line}")
    click.echo(f"   and the phone officers (a fake Twilio on {phones.base_url}, through the real webhooks):")
    for line in phones.officers_log():
        click.echo(f"   {line}")
    click.echo("   the result:\n")
    show_run(app, run_id, pings=False)
    _write_reports(app, run_id, workdir)
    click.echo(f"\ndemo finished in {time.monotonic() - t0:.0f} s (real time); sandbox record: {settings.sandbox_log}")
    click.echo(f"explore it:  export COMMTEST_DATABASE_URL={settings.database_url}\n"
               f"             commtest runs show {run_id} --pings;  commtest schedule list;  commtest report test {run_id} --lang nl")
    app.close()


def _write_reports(app: AppContext, run_id: int, workdir: Path) -> None:
    try:
        from reports.directory_report import write_directory
        from reports.test_report import write_test_report
    except ImportError:
        click.echo("(reports package not available: no report written)")
        return
    out = workdir / "reports"
    paths = list(write_test_report(app.engine, run_id, out, formats=("html", "pdf"), lang="en"))
    paths += list(write_directory(app.engine, out, formats=("html", "csv", "vcard"), lang="en"))
    click.echo("\nreports written:")
    for p in paths:
        click.echo(f"  {p}")
