"""A local SMTP server (aiosmtpd) for the demo and the tests: it stores every message it
accepts as an .eml file in a Maildir folder, one copy per recipient, with the headers a
real delivery agent adds (``Return-Path`` from MAIL FROM, ``Delivered-To``).

``refuse`` makes it answer RCPT with an error for matching addresses (fnmatch patterns),
e.g. ``{"nobody@*": (550, "5.1.1 mailbox unknown")}`` or a 4xx to test retries.
"""
from __future__ import annotations

import fnmatch
import mailbox
import threading
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


class _Handler:
    def __init__(self, maildir: Path, refuse: dict[str, tuple[int, str]]) -> None:
        self.box = mailbox.Maildir(maildir, create=True)
        self.refuse = refuse
        self.lock = threading.Lock()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        for pattern, (code, text) in self.refuse.items():
            if fnmatch.fnmatch(address.lower(), pattern.lower()):
                return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        sender = envelope.mail_from or ""
        for rcpt in envelope.rcpt_tos:
            head = f"Return-Path: <{sender}>\r\nDelivered-To: {rcpt}\r\n".encode()
            with self.lock:
                self.box.add(head + content)
        return "250 Message accepted for delivery"


class DevSmtpServer:
    """``DevSmtpServer(host, port, maildir).start()``; ``messages()`` lists what it received."""

    def __init__(self, host: str, port: int, maildir: Path, refuse: dict[str, tuple[int, str]] | None = None) -> None:
        self.host = host
        self.port = port
        self.maildir = Path(maildir)
        self.refuse: dict[str, tuple[int, str]] = dict(refuse or {})
        self._handler = _Handler(self.maildir, self.refuse)
        self._controller: Controller | None = None

    def start(self) -> None:
        kwargs: dict[str, Any] = {"hostname": self.host, "port": self.port}
        self._controller = Controller(self._handler, **kwargs)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def set_refusals(self, refuse: dict[str, tuple[int, str]]) -> None:
        self.refuse.clear()
        self.refuse.update(refuse)

    def messages(self) -> list[EmailMessage]:
        """Every stored message, oldest first."""
        parser = BytesParser(policy=default)
        mailbox.Maildir(self.maildir, create=True)  # creates new/, cur/, tmp/ if nothing arrived yet
        # A mail reader may move a file from new/ to cur/ while we list: read what is still there.
        found: list[tuple[int, str, bytes]] = []
        for sub in ("new", "cur"):
            for path in (self.maildir / sub).iterdir():
                try:
                    found.append((path.stat().st_mtime_ns, path.name.split(":")[0], path.read_bytes()))
                except FileNotFoundError:
                    try:  # moved to cur/ (with flags appended to its name) meanwhile
                        moved = next((self.maildir / "cur").glob(path.name.split(":")[0] + "*"))
                        found.append((moved.stat().st_mtime_ns, path.name.split(":")[0], moved.read_bytes()))
                    except (StopIteration, FileNotFoundError):
                        continue
        out = []
        seen: set[str] = set()
        for _, key, raw in sorted(found, key=lambda f: (f[0], f[1])):
            if key in seen:
                continue
            seen.add(key)
            msg = parser.parsebytes(raw)
            assert isinstance(msg, EmailMessage)
            out.append(msg)
        return out

    def clear(self) -> None:
        for sub in ("new", "cur", "tmp"):
            folder = self.maildir / sub
            if folder.exists():
                for p in folder.iterdir():
                    p.unlink()

    def __enter__(self) -> DevSmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
