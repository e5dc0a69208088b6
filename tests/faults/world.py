"""What the replica fault tests share: the daemons' settings, the sandbox's script for voice
and SMS, and the feeder that keeps runs in flight with ``commtest run … --now --no-wait``."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channels.email.devserver import DevSmtpServer
from commtest.db import read_session
from commtest.models import Playbook, TestRun

# Voice and SMS officers as the sandbox plays them; e-mail is answered by tests.faults.officers.
SCRIPT = """
default: {behaviour: ack, after: 1s, send_delay: 0.03}
rules:
  - {match: "+3225??0001", behaviour: never, send_delay: 0.03}
  - {match: "+3225??0002", attempt: 1, behaviour: voicemail, after: 1s, send_delay: 0.03}
  - {match: "+3225??0003", attempt: 1, behaviour: fail}
  - {match: "+32470??0004", behaviour: never, send_delay: 0.03}
"""


class RunFeeder:
    """Queues a new run with the CLI whenever fewer than ``self.open_runs_wanted`` are planned or running."""

    def __init__(self, engine: Engine, env: dict[str, str], tmp: Path, *, open_runs: int = 2) -> None:
        self.open_runs_wanted = open_runs
        self.engine = engine
        self.env = env
        self.tmp = tmp
        self.stopping = threading.Event()
        self.queued = 0
        self.failures: list[str] = []
        self.thread = threading.Thread(target=self._loop, name="run-feeder", daemon=True)

    def open_runs(self) -> int:
        with read_session(self.engine) as s:
            return int(s.connection().execute(sa.select(sa.func.count()).select_from(TestRun.__table__).where(
                TestRun.__table__.c.status.in_(("planned", "running")))).scalar_one())  # type: ignore[attr-defined]

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                missing = self.open_runs_wanted - self.open_runs()
            except sa.exc.SQLAlchemyError:
                missing = 0
            for _ in range(max(0, missing)):
                env = {k: v for k, v in os.environ.items() if not k.startswith("COMMTEST_")}
                env.update(self.env)
                done = subprocess.run([sys.executable, "-m", "commtest", "run", "fast-playbook", "--now", "--no-wait",
                                       "--by", "fault-suite"], env=env, cwd=self.tmp, capture_output=True, timeout=120)
                if done.returncode == 0:
                    self.queued += 1
                else:
                    self.failures.append(done.stderr.decode(errors="replace")[-2000:])
            self.stopping.wait(0.5)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(150)


def shared_env(tmp: Path, db_url: str, smtp: DevSmtpServer, public_url: str, *, workers: int) -> dict[str, str]:
    """The settings every replica shares (each adds its web port and its sandbox log)."""
    return {
        "COMMTEST_SANDBOX": "true",
        "COMMTEST_DATABASE_URL": db_url,
        "COMMTEST_PLAYBOOK_DIR": str(tmp / "playbooks"),
        "COMMTEST_REPORT_DIR": str(tmp / "reports"),
        "COMMTEST_SANDBOX_SCRIPT": str(tmp / "script.yaml"),
        "COMMTEST_CHANNELS": '{"email": "smtp"}',
        "COMMTEST_SMTP_HOST": smtp.host,
        "COMMTEST_SMTP_PORT": str(smtp.port),
        "COMMTEST_SMTP_TIMEOUT_SECONDS": "15",
        "COMMTEST_MAIL_FROM": "commtest@coord.example",
        "COMMTEST_REPLY_ADDRESS": "ack@coord.example",
        "COMMTEST_WEB_HOST": "127.0.0.1",
        "COMMTEST_PUBLIC_BASE_URL": public_url,
        # Every replica signs the forms with the same key: a page from one may be posted to the other.
        "COMMTEST_SECRET_KEY": secrets.token_hex(32),
        "COMMTEST_ACK_RATE_LIMIT_PER_MINUTE": "1000000",  # every officer of this test is 127.0.0.1
        "COMMTEST_TICK_SECONDS": "0.1",
        "COMMTEST_DISPATCH_WORKERS": str(workers),
        "COMMTEST_LOG_LEVEL": "INFO",
    }


def write_world(tmp: Path, playbook: str) -> None:
    (tmp / "playbooks").mkdir()
    (tmp / "playbooks" / "fast.yaml").write_text(playbook)
    (tmp / "script.yaml").write_text(SCRIPT)


def has_playbook(engine: Engine) -> bool:
    try:
        with read_session(engine) as s:
            pb = s.get(Playbook, "fast-playbook")
            return pb is not None and pb.current_revision_id is not None
    except sa.exc.SQLAlchemyError:
        return False


class MailReader:
    """The reply-mailbox reader (``scheduler.inbound.serve_inbound``) in a thread of this
    process, on a Maildir the officers reply into: a reader on its own replica."""

    def __init__(self, db_url: str, maildir: Path) -> None:
        from channels.email.maildir import MaildirSource
        from commtest.clock import SystemClock
        from commtest.db import make_engine
        from commtest.settings import load_settings

        self.engine = make_engine(db_url)
        self.settings = load_settings(database_url=db_url, reply_address="ack@coord.example",
                                      mail_from="commtest@coord.example", imap_poll_seconds=0.2)
        self.source = MaildirSource(maildir)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(SystemClock(),), name="mail-reader", daemon=True)
        self.crashed: BaseException | None = None

    def _serve(self, clock: object) -> None:
        from scheduler.inbound import serve_inbound

        try:
            serve_inbound(self.engine, clock, self.settings, self.source, self.stopping)  # type: ignore[arg-type]
        except BaseException as exc:  # the thread would die silently, as it would in the daemon
            self.crashed = exc
            raise

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stop the reader; it must still have been running."""
        alive = self.thread.is_alive()
        self.stopping.set()
        self.thread.join(15)
        self.engine.dispose()
        assert alive and self.crashed is None, f"the mail reader died: {self.crashed!r}"
