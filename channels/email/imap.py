"""The IMAP mailbox that receives replies, out-of-office notices and bounces (IMAPClient).

A processed message gets ``\\Seen`` and the keyword ``$CommtestDone``; ``fetch_new``
asks only for messages without that keyword (not for unseen ones: a person reading the
shared mailbox must not hide replies from us). Together with the ``InboundMessage``
table this makes a restart count nothing twice. Where the server's CAPABILITY offers
IDLE, ``wait`` blocks until the server announces new mail; otherwise the caller polls.
"""
from __future__ import annotations

import logging
import ssl
from typing import Any, Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from channels.email.inbound import RawMail
from commtest.clock import ensure_utc
from commtest.errors import ChannelError, ConfigError
from commtest.settings import Settings

log = logging.getLogger(__name__)

DONE_KEYWORD = b"$CommtestDone"
SEEN = b"\\Seen"
# RFC 2177: a client should re-issue IDLE at least every 29 minutes.
MAX_IDLE_SECONDS = 29 * 60


class ImapSource:
    def __init__(self, settings: Settings, *, ssl_context: ssl.SSLContext | None = None,
                 client_factory: Callable[[], IMAPClient] | None = None) -> None:
        if not settings.imap_host:
            raise ConfigError("COMMTEST_IMAP_HOST: not set; the IMAP reader needs the mailbox of the reply address")
        self.settings = settings
        self.ssl_context = ssl_context or ssl.create_default_context()
        self._factory = client_factory
        self._client: IMAPClient | None = None
        self.capabilities: tuple[bytes, ...] = ()

    # ------------------------------------------------------------------ connection
    def _connect(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        s = self.settings
        try:
            if self._factory is not None:
                client = self._factory()
            else:
                client = IMAPClient(s.imap_host or "", port=s.imap_port, ssl=s.imap_security == "tls",
                                    ssl_context=self.ssl_context, timeout=s.smtp_timeout_seconds)
                if s.imap_security == "starttls":
                    client.starttls(self.ssl_context)
            client.normalise_times = False  # aware datetimes for INTERNALDATE
            password = s.imap_password.get_secret_value() if s.imap_password else ""
            client.login(s.imap_username or "", password)
            client.select_folder(s.imap_mailbox)
            self.capabilities = tuple(client.capabilities())
        except (IMAPClientError, OSError) as exc:
            raise ChannelError(f"IMAP {s.imap_host}:{s.imap_port} {s.imap_mailbox}: {type(exc).__name__}: {exc}",
                               permanent=False, code="imap-unreachable") from exc
        self._client = client
        return client

    @property
    def supports_idle(self) -> bool:
        self._connect()
        return b"IDLE" in self.capabilities

    def _guard(self, what: str, fn: Callable[[IMAPClient], Any]) -> Any:
        client = self._connect()
        try:
            return fn(client)
        except (IMAPClientError, OSError) as exc:
            self.close()  # reconnect next time
            raise ChannelError(f"IMAP {what} failed: {type(exc).__name__}: {exc}", permanent=False,
                               code="imap-error") from exc

    # ------------------------------------------------------------------ source
    def fetch_new(self) -> list[RawMail]:
        def fetch(client: IMAPClient) -> list[RawMail]:
            uids = client.search(["UNKEYWORD", DONE_KEYWORD.decode()])
            if not uids:
                return []
            data = client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE"])
            out = []
            for uid in sorted(data):
                item = data[uid]
                when = item.get(b"INTERNALDATE")
                out.append(RawMail(uid=str(uid), data=bytes(item[b"BODY[]"]), mailbox=self.settings.imap_mailbox,
                                   received_at=ensure_utc(when) if when is not None else None))
            return out

        result: list[RawMail] = self._guard("fetch", fetch)
        return result

    def mark_processed(self, uid: str) -> None:
        self._guard("store", lambda c: c.add_flags([int(uid)], [SEEN, DONE_KEYWORD]))

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds for new mail with IDLE. Returns True when the server
        announced some; False at once when the server has no IDLE (the caller polls)."""
        if not self.supports_idle:
            return False

        def idle(client: IMAPClient) -> bool:
            client.idle()
            try:
                responses = client.idle_check(timeout=min(timeout, MAX_IDLE_SECONDS))
            finally:
                client.idle_done()
            return any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses)

        announced: bool = self._guard("idle", idle)
        return announced

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (IMAPClientError, OSError):
            log.debug("IMAP logout failed; connection dropped", exc_info=True)
