"""A fake CAP partner platform for the demo and the tests: it takes our alert as a real one
would (our HMAC header checked, the alert read against the CAP 1.2 schema) and, ``delay``
later, answers with a signed CAP Ack referencing it.

``handle_request`` is its HTTP inbox (``POST`` of a CAP alert); ``flush(now, post)`` sends
the Acks that are due to our ``/hooks/cap/{name}``.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from channels.cap.message import CapMessage, CapRefused, build_ack, read_cap
from channels.cap.signing import HEADER, sign, verify
from commtest.clock import Clock


@dataclass
class _Due:
    at: datetime
    alert: CapMessage


class FakeCapPartner:
    def __init__(self, name: str, secret: str, clock: Clock, *, delay: timedelta = timedelta(seconds=40),
                 sender: str = "lcms@ncc.example", answer: bool = True) -> None:
        self.name = name
        self.secret = secret
        self.clock = clock
        self.delay = delay
        self.sender = sender
        self.answer = answer  # False: takes alerts and never acknowledges
        self.received: list[CapMessage] = []
        self.refused: list[str] = []
        self.sent: list[tuple[bytes, int]] = []
        self._due: list[_Due] = []
        self._n = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        if request.method != "POST":
            return httpx.Response(405)
        if not verify(self.secret, body, request.headers.get(HEADER)):
            self.refused.append("signature")
            return httpx.Response(403, text="signature refused")
        try:
            alert = read_cap(body)
        except CapRefused as exc:
            self.refused.append(exc.code or "cap")
            return httpx.Response(exc.status, text=exc.message)
        with self._lock:
            self.received.append(alert)
            if self.answer and alert.msg_type == "Alert":
                self._due.append(_Due(self.clock.now() + self.delay, alert))
        return httpx.Response(202, text="accepted")

    def ack_for(self, alert: CapMessage) -> bytes:
        with self._lock:
            self._n += 1
            n = self._n
        return build_ack(identifier=f"{self.name}-ack-{n}", sender=self.sender, sent=self.clock.now(),
                         addresses=alert.sender, references=[(alert.sender, alert.identifier, alert.sent)],
                         note="Received by the partner platform (fake).")

    def flush(self, now: datetime, post: Callable[[bytes, dict[str, str]], int]) -> list[int]:
        """Send every Ack whose moment has come, signed; returns the HTTP answers."""
        with self._lock:
            due = [d for d in self._due if d.at <= now]
            self._due = [d for d in self._due if d.at > now]
        codes = []
        for d in due:
            body = self.ack_for(d.alert)
            code = post(body, {"Content-Type": "application/xml; charset=utf-8", HEADER: sign(self.secret, body)})
            self.sent.append((body, code))
            codes.append(code)
        return codes
