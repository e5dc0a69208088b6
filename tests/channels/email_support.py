"""Fixtures for the e-mail tests: a real SMTP server (aiosmtpd, in process) and a real
IMAP server (Debian's Dovecot, started from a generated configuration)."""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from channels.base import Channel, OutgoingPing
from channels.email.devserver import DevSmtpServer
from channels.email.smtp import SmtpChannel
from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxScript
from commtest.clock import UTC, Clock
from scheduler.engine import RunEngine
from commtest.settings import Settings, load_settings

TOKEN = "Abcdefghijklmnopqrstuvwxyz0123456789-_ABCDE"  # 43 URL-safe characters, like token_urlsafe(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevSmtpServer]:
    server = DevSmtpServer("127.0.0.1", free_port(), tmp_path_factory.mktemp("smtp") / "Maildir")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: DevSmtpServer) -> Iterator[DevSmtpServer]:
    """The session's SMTP server, emptied and accepting everyone for this test."""
    smtp_server.clear()
    smtp_server.set_refusals({})
    yield smtp_server
    smtp_server.set_refusals({})


def email_settings(engine: Engine | None, smtp: DevSmtpServer, **extra: object) -> Settings:
    values: dict[str, object] = dict(
        smtp_host=smtp.host, smtp_port=smtp.port, smtp_timeout_seconds=5.0, channels={"email": "smtp"},
        mail_from="commtest@coord.example", reply_address="ack@coord.example",
        public_base_url="http://127.0.0.1:8080", dispatch_workers=2,
    )
    if engine is not None:
        values["database_url"] = engine.url.render_as_string(hide_password=False)
    values.update(extra)
    return load_settings(**values)


def outgoing(**kw: object) -> OutgoingPing:
    values: dict[str, object] = dict(
        ping_id=7, run_id=3, channel="email", address="desk@xa-one.example", language="nl",
        subject="Communicatietest 3", body="Bevestig alstublieft: http://127.0.0.1:8080/ack/" + TOKEN,
        html=None, ack_url="http://127.0.0.1:8080/ack/" + TOKEN, ack_code="123456", token=TOKEN,
        deadline_at=datetime(2026, 4, 14, 8, 15, tzinfo=UTC), organisation_code="XA-ONE",
        contact_name="Centre One desk", attempt=1,
    )
    values.update(kw)
    return OutgoingPing(**values)  # type: ignore[arg-type]


def email_engine(engine: Engine, clock: Clock, server: DevSmtpServer, **extra: object) -> RunEngine:
    """A run engine whose e-mail goes through SMTP to ``server``; other kinds never answer."""
    settings = email_settings(engine, server, **extra)
    quiet = SandboxScript(default=Rule("never"))
    chans: dict[str, Channel] = {k: SandboxChannel(k, clock, quiet) for k in ("voice", "sms", "video", "cap", "manual")}
    chans["email"] = SmtpChannel(settings, clock)
    return RunEngine(engine, settings, clock, ChannelSet(settings, clock, chans), actor="test")


# ---------------------------------------------------------------------------- Dovecot

@dataclass(frozen=True)
class Imap:
    host: str
    port: int
    user: str
    password: str

    def settings(self, engine: Engine | None = None, **extra: object) -> Settings:
        values: dict[str, object] = dict(imap_host=self.host, imap_port=self.port, imap_security="none",
                                         imap_username=self.user, imap_password=self.password,
                                         imap_mailbox="INBOX", imap_poll_seconds=0.2,
                                         reply_address="ack@coord.example", mail_from="commtest@coord.example")
        if engine is not None:
            values["database_url"] = engine.url.render_as_string(hide_password=False)
        values.update(extra)
        return load_settings(**values)


_CONF = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
{plaintext}
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={internal} gid={internal_gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _dovecot_version(binary: str) -> tuple[int, ...]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return tuple(int(x) for x in out.split()[0].split(".")[:2])


class DovecotServer:
    """A Dovecot of its own (IMAP only, plaintext on loopback) that a test may stop and start
    again on the same port and mail folder, as a mail server restart would."""

    def __init__(self, binary: str, root: Path, port: int) -> None:
        self.binary = binary
        self.root = root
        self.port = port
        self.conf = root / "dovecot.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def create(cls) -> DovecotServer:
        """Skips the test (with the reason) where Dovecot cannot run."""
        binary = shutil.which("dovecot") or ("/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None)
        if binary is None:
            pytest.skip("Dovecot is not installed (apt-get install dovecot-imapd; .ci/run does): IMAP tests skipped")
        if os.geteuid() != 0:
            pytest.skip("the Dovecot fixture runs Dovecot as root with its own system users: run the tests as root")
        try:
            internal = pwd.getpwnam("dovecot")
            login = pwd.getpwnam("dovenull")
        except KeyError:
            pytest.skip("Dovecot's system users (dovecot, dovenull) are missing: reinstall dovecot-core")
        # Not under pytest's tmp dir: that is 0700, and Dovecot's auth and mail processes run
        # as its own users, who must reach the passwd file and the Maildir.
        root = Path(tempfile.mkdtemp(prefix="commtest-dovecot-"))
        root.chmod(0o755)
        (root / "mail").mkdir()
        os.chown(root / "mail", internal.pw_uid, internal.pw_gid)
        (root / "passwd").write_text("officer:{PLAIN}fictional-secret::::::\n")
        server = cls(binary, root, free_port())
        # 2.4 renamed the switch that allows passwords over an unencrypted loopback connection.
        plaintext = "auth_allow_cleartext = yes" if _dovecot_version(binary) >= (2, 4) else "disable_plaintext_auth = no"
        server.conf.write_text(_CONF.format(root=root, port=server.port, internal=internal.pw_name,
                                            internal_gid=internal.pw_gid, login=login.pw_name, plaintext=plaintext))
        return server

    def imap(self) -> Imap:
        return Imap("127.0.0.1", self.port, "officer", "fictional-secret")

    def start(self) -> None:
        self.proc = subprocess.Popen([self.binary, "-F", "-c", str(self.conf)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.proc.kill()
                    out = self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""
                    log = (self.root / "dovecot.log").read_text() if (self.root / "dovecot.log").exists() else ""
                    pytest.fail(f"Dovecot did not start:\n{out}\n{log}")
                time.sleep(0.05)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kick(self, user: str = "officer") -> bool:
        """Cut every IMAP connection of ``user`` (``doveadm kick``), the server staying up.
        True when one was cut (doveadm exits 68 when ``user`` had none)."""
        done = subprocess.run(["doveadm", "-c", str(self.conf), "kick", user], capture_output=True, timeout=10)
        if done.returncode not in (0, 68):
            raise AssertionError(f"doveadm kick failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        return done.returncode == 0

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imap]:
    server = DovecotServer.create()
    server.start()
    try:
        yield server.imap()
    finally:
        server.remove()
