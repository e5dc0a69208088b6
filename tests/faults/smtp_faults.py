"""An SMTP server that misbehaves on cue: a raw asyncio server speaking just enough SMTP
(RFC 5321) for aiosmtplib, run in a thread of the test process.

Each recipient address has a script, one behaviour per connection that reaches RCPT for it
(the last one repeats):

``accept``        250 to everything; the message is delivered to the mailbox
``rcpt-4xx``      451 on RCPT (try again later)
``rcpt-5xx``      550 on RCPT (no such mailbox)
``rcpt-timeout``  no answer to RCPT at all; the client gives up
``data-4xx``      451 after the message's final dot (not delivered)
``data-drop``     the connection is cut halfway through DATA (not delivered)
``data-timeout``  no answer after the final dot, though the server has the whole message and
                  delivers it: SMTP's own ambiguity (RFC 1047), which the client cannot tell
                  from a lost message

``delivered`` is the server's own log: every message it put in a mailbox, with its
``X-Commtest-Ping`` header, so a test can count what each mailbox received.
"""
from __future__ import annotations

import asyncio
import re
import threading
from collections import defaultdict
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import default

from channels.email.message import plus_tag

BEHAVIOURS = ("accept", "rcpt-4xx", "rcpt-5xx", "rcpt-timeout", "data-4xx", "data-drop", "data-timeout")
ADDRESS = re.compile(rb"<([^>]*)>")


@dataclass(frozen=True)
class Delivered:
    address: str
    ping_id: int | None
    behaviour: str
    token: str | None  # the plus-tag of its Reply-To: what an officer's answer carries


class FaultySmtpServer:
    def __init__(self, scripts: dict[str, list[str]], host: str = "127.0.0.1") -> None:
        for address, script in scripts.items():
            unknown = set(script) - set(BEHAVIOURS)
            assert not unknown and script, f"{address}: unknown behaviours {unknown}"
        self.scripts = {a.lower(): list(s) for a, s in scripts.items()}
        self.host = host
        self.port = 0
        self.delivered: list[Delivered] = []
        self.rcpt_seen: dict[str, int] = defaultdict(int)
        self.events: list[tuple[str, str]] = []  # (address, behaviour) as each was played
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(asyncio.start_server(self._session, self.host, 0))
            self.port = int(self._server.sockets[0].getsockname()[1])
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="faulty-smtp", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the faulty SMTP server did not start"

    def stop(self) -> None:
        loop = self._loop
        if loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            for w in list(self._writers):
                w.transport.abort()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FaultySmtpServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def received_by(self, address: str) -> list[Delivered]:
        with self._lock:
            return [d for d in self.delivered if d.address == address.lower()]

    # ------------------------------------------------------------------ one connection
    def _behaviour(self, address: str) -> str:
        with self._lock:
            script = self.scripts.get(address, ["accept"])
            n = self.rcpt_seen[address]
            self.rcpt_seen[address] += 1
            behaviour = script[min(n, len(script) - 1)]
            self.events.append((address, behaviour))
            return behaviour

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        behaviour, rcpt = "accept", ""
        try:
            writer.write(b"220 faults.example ESMTP ready\r\n")
            await writer.drain()
            while True:
                line = await reader.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-faults.example\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
                elif verb == b"MAIL":
                    writer.write(b"250 2.1.0 OK\r\n")
                elif verb == b"RCPT":
                    found = ADDRESS.search(line)
                    rcpt = (found.group(1) if found else b"").decode().lower()
                    behaviour = self._behaviour(rcpt)
                    if behaviour == "rcpt-timeout":
                        await reader.read()  # say nothing until the client gives up and hangs up
                        return
                    writer.write({"rcpt-4xx": b"451 4.3.0 mailbox busy, try again later\r\n",
                                  "rcpt-5xx": b"550 5.1.1 mailbox unknown\r\n"}.get(behaviour, b"250 2.1.5 OK\r\n"))
                elif verb == b"DATA":
                    writer.write(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    if behaviour == "data-drop":
                        await reader.readline()  # a line of the message, then the line goes dead
                        writer.transport.abort()
                        return
                    data = bytearray()
                    while True:
                        chunk = await reader.readline()
                        if not chunk:
                            return
                        if chunk == b".\r\n":
                            break
                        data.extend(chunk[1:] if chunk.startswith(b"..") else chunk)
                    if behaviour in ("accept", "data-timeout"):
                        self._deliver(rcpt, bytes(data), behaviour)
                    if behaviour == "data-timeout":
                        await reader.read()
                        return
                    writer.write(b"451 4.3.0 queue full, try again later\r\n" if behaviour == "data-4xx"
                                 else b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    return
                else:  # RSET, NOOP and the rest
                    writer.write(b"250 2.0.0 OK\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    def _deliver(self, address: str, data: bytes, behaviour: str) -> None:
        msg = BytesParser(policy=default).parsebytes(data, headersonly=True)
        ping = msg.get("X-Commtest-Ping")
        token = plus_tag(str(msg.get("Reply-To", "")))
        with self._lock:
            self.delivered.append(Delivered(address, int(str(ping)) if ping else None, behaviour, token))
