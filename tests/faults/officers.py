"""Duty officers who answer the e-mail pings that reach the local SMTP server, through the
real acknowledgement pages of the replicas (GET the page for its form and CSRF field, then
POST it, as a browser and ``web.officer.acknowledge_by_link`` do): some soon, some exactly
on their deadline (the POST scheduled for ``sent + ack_deadline``, read from the database),
some by replying to the e-mail (into a Maildir the mail reader reads), some never. Every
response is kept, so the test can hold each 2xx and each reply to what the database says.
"""
from __future__ import annotations

import heapq
import itertools
import mailbox
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from channels.email.message import build_reply
from commtest.db import read_session
from commtest.models import Ping
from web.officer import _FormReader

ACK_PATH = re.compile(r"/ack/[A-Za-z0-9_-]{43}")
PT = Ping.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Mail:
    """One message the SMTP server was handed: the fake's own record of an attempt."""

    ping_id: int
    address: str
    ack_path: str | None
    seen: float  # wall clock (epoch) when the test saw it


@dataclass
class Response:
    replica: str
    step: str  # get | post
    status: int | None  # None: the connection failed (the replica died, or was starting)
    kind: str  # acked | closed | already | expired | csrf | unknown | ratelimited | error | form | connection
    posted: float  # epoch
    answered: float


@dataclass
class Answer:
    ping_id: int
    mode: str  # soon | deadline | reply
    deadline: float | None = None  # epoch, for mode "deadline"
    post_at: float | None = None
    responses: list[Response] = field(default_factory=list)
    reply_id: str | None = None  # the Message-ID of the reply, for mode "reply"

    @property
    def final(self) -> Response | None:
        posts = [r for r in self.responses if r.step == "post" and r.status is not None]
        gets = [r for r in self.responses if r.status is not None]
        return posts[-1] if posts else (gets[-1] if gets else None)

    @property
    def got_2xx_ack(self) -> bool:
        return any(r.step == "post" and r.kind == "acked" for r in self.responses)

    def acked_post(self) -> Response | None:
        return next((r for r in self.responses if r.step == "post" and r.kind == "acked"), None)


def classify(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "acked" if 'class="ok"' in response.text else ("form" if "<form" in response.text else "closed")
    return {409: "already", 410: "expired", 403: "csrf", 404: "unknown", 429: "ratelimited"}.get(
        response.status_code, "error" if response.status_code >= 500 else f"http-{response.status_code}")


class Officers:
    """Watches the SMTP server's Maildir and answers what arrives."""

    def __init__(self, maildir: Path, urls: dict[str, str], engine: Engine, rng: random.Random, *,
                 soon: float = 0.4, on_deadline: float = 0.35, by_reply: float = 0.0, reply_box: Path | None = None,
                 workers: int = 16, answer_within: float = 2.5) -> None:
        assert not by_reply or reply_box is not None, "replies need a Maildir to go to"
        self.maildir = maildir
        self.by_reply = by_reply
        self.reply_box = mailbox.Maildir(reply_box, create=True) if reply_box is not None else None
        self._raw: dict[int, bytes] = {}
        self._unanswered: list[Mail] = []
        self.urls = urls
        self.engine = engine
        self.rng = rng
        self.soon = soon
        self.on_deadline = on_deadline
        self.answer_within = answer_within
        self.mails: list[Mail] = []
        self.answers: list[Answer] = []
        self._seen: set[str] = set()
        self._paths: dict[int, str] = {}
        self._lock = threading.Lock()
        self._rng_lock = threading.Lock()
        self._heap: list[tuple[float, int, Answer]] = []
        self._seq = itertools.count()
        self._awaiting: dict[int, tuple[Answer, float]] = {}  # deadline answers waiting for the ping's deadline
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="officer")
        self._busy = 0
        self._local = threading.local()
        self.stopping = threading.Event()
        self.accepting = threading.Event()
        self.accepting.set()
        self._threads = [threading.Thread(target=self._watch, name="officers-watch", daemon=True),
                         threading.Thread(target=self._deadlines, name="officers-deadlines", daemon=True),
                         threading.Thread(target=self._dispatch, name="officers-dispatch", daemon=True)]
        self._parser = BytesParser(policy=default)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        mailbox.Maildir(self.maildir, create=True)
        for t in self._threads:
            t.start()

    def stop_answering_new_mail(self) -> None:
        self.accepting.clear()

    def idle(self) -> bool:
        with self._lock:
            return not self._heap and not self._awaiting and self._busy == 0

    def stop(self) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(10)
        self._pool.shutdown(wait=True)

    def count(self) -> int:
        with self._lock:
            return len(self.mails)

    # ---------------------------------------------------------------- watching the mailbox
    def scan(self) -> list[Mail]:
        new: list[Mail] = []
        for sub in ("new", "cur"):
            folder = self.maildir / sub
            if not folder.exists():
                continue
            for path in folder.iterdir():
                key = path.name.split(":")[0]
                if key in self._seen:
                    continue
                try:
                    raw = path.read_bytes()
                except FileNotFoundError:
                    continue
                self._seen.add(key)
                mail = self._mail(raw)
                self._raw[mail.ping_id] = raw
                new.append(mail)
        with self._lock:
            self.mails.extend(new)
        return new

    def _mail(self, raw: bytes) -> Mail:
        msg = self._parser.parsebytes(raw)
        assert isinstance(msg, EmailMessage)
        body = msg.get_body(preferencelist=("plain",))
        text = str(body.get_content()) if body is not None else ""
        found = ACK_PATH.search(text)
        return Mail(int(str(msg["X-Commtest-Ping"])), str(msg["Delivered-To"]), found.group(0) if found else None,
                    time.time())

    def _watch(self) -> None:
        while not self.stopping.is_set():
            for mail in self.scan():
                if self.accepting.is_set() and mail.ack_path:
                    self._plan(mail)
            time.sleep(0.05)

    def _draw(self) -> float:
        with self._rng_lock:
            return self.rng.random()

    def _plan(self, mail: Mail) -> None:
        r = self._draw()
        if r < self.soon:
            answer = Answer(mail.ping_id, "soon", post_at=time.time() + 0.2 + self._draw() * self.answer_within)
            self._schedule(answer.post_at or 0.0, answer, mail)
        elif r < self.soon + self.on_deadline:
            answer = Answer(mail.ping_id, "deadline")
            with self._lock:
                self._awaiting[mail.ping_id] = (answer, time.time())
                self.answers.append(answer)
                self._paths[mail.ping_id] = mail.ack_path or ""
        elif r < self.soon + self.on_deadline + self.by_reply:
            answer = Answer(mail.ping_id, "reply", post_at=time.time() + 0.2 + self._draw() * self.answer_within)
            self._schedule(answer.post_at or 0.0, answer, mail)
        else:  # this officer does not answer (the playbook retries, then the run moves on)
            with self._lock:
                self._unanswered.append(mail)

    def _schedule(self, at: float, answer: Answer, mail: Mail | None = None) -> None:
        with self._lock:
            if mail is not None:
                self._paths[mail.ping_id] = mail.ack_path or ""
                self.answers.append(answer)
            heapq.heappush(self._heap, (at, next(self._seq), answer))

    # ---------------------------------------------------------------- answers on the deadline
    def _deadlines(self) -> None:
        """Read each awaited ping's deadline from the database and schedule its POST exactly then."""
        while not self.stopping.is_set():
            with self._lock:
                waiting = dict(self._awaiting)
            if waiting:
                try:
                    with read_session(self.engine) as s:
                        rows = s.connection().execute(sa.select(PT.c.id, PT.c.deadline_at).where(
                            PT.c.id.in_(list(waiting)))).all()
                except sa.exc.SQLAlchemyError:
                    rows = []  # the database restarting (the PostgreSQL fault): ask again
                for ping_id, deadline_at in rows:
                    answer, since = waiting[ping_id]
                    if deadline_at is not None:
                        deadline = _epoch(deadline_at)
                        answer.deadline = deadline
                        # Straddle the deadline by a few milliseconds either way.
                        answer.post_at = deadline + (self._draw() - 0.5) * 0.04
                        with self._lock:
                            self._awaiting.pop(ping_id, None)
                            # The worker GETs the page first, then waits for the moment to POST.
                            heapq.heappush(self._heap, (answer.post_at - 0.8, next(self._seq), answer))
                    elif time.time() - since > 5.0:
                        # Never recorded as sent (the leader died during the call: unknown): answer anyway.
                        answer.mode = "soon"
                        answer.post_at = time.time()
                        with self._lock:
                            self._awaiting.pop(ping_id, None)
                            heapq.heappush(self._heap, (answer.post_at, next(self._seq), answer))
            time.sleep(0.05)

    # ---------------------------------------------------------------- answering
    def _dispatch(self) -> None:
        while not self.stopping.is_set():
            due: list[Answer] = []
            with self._lock:
                now = time.time()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])
                self._busy += len(due)
            for answer in due:
                self._pool.submit(self._run, answer)
            time.sleep(0.005)

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            client = httpx.Client(timeout=20.0, headers={"User-Agent": "commtest-faults officer"})
            self._local.client = client
        return client

    def _run(self, answer: Answer) -> None:
        try:
            self._answer(answer)
        finally:
            with self._lock:
                self._busy -= 1

    def _reply(self, answer: Answer) -> None:
        """A person's reply to the e-mail, as the reply mailbox would receive it."""
        original = self._parser.parsebytes(self._raw[answer.ping_id])
        assert isinstance(original, EmailMessage) and self.reply_box is not None
        reply = build_reply(original, f"Officer {answer.ping_id} <officer{answer.ping_id}@centre.example>",
                            "Received, thank you.")
        answer.reply_id = str(reply["Message-ID"])
        at = time.time()
        with self._lock:
            self.reply_box.add(bytes(reply))
        answer.responses.append(Response("mail", "reply", None, "replied", at, at))

    def reply_now(self) -> Answer | None:
        """One officer who had not answered replies to the e-mail now (the test picks the moment)."""
        with self._lock:
            if not self._unanswered:
                return None
            mail = self._unanswered.pop()
            answer = Answer(mail.ping_id, "reply", post_at=time.time())
            self._paths[mail.ping_id] = mail.ack_path or ""
            self.answers.append(answer)
        self._reply(answer)
        return answer

    def _answer(self, answer: Answer) -> None:
        if answer.mode == "reply":
            self._reply(answer)
            return
        client = self._client()
        path = self._paths[answer.ping_id]
        slots = sorted(self.urls)
        for attempt in range(8):
            if self.stopping.is_set():
                return
            get_slot = slots[int(self._draw() * len(slots))]
            post_slot = get_slot if self._draw() < 0.7 else next(s for s in slots if s != get_slot)
            started = time.time()
            try:
                page = client.get(self.urls[get_slot] + path)
            except httpx.TransportError:
                answer.responses.append(Response(get_slot, "get", None, "connection", started, time.time()))
                time.sleep(0.3)
                continue
            kind = classify(page)
            answer.responses.append(Response(get_slot, "get", page.status_code, kind, started, time.time()))
            reader = _FormReader()
            reader.feed(page.text)
            if page.status_code != 200 or reader.action is None:
                if kind in ("error", "ratelimited"):
                    time.sleep(0.3)
                    continue
                return  # already answered, expired or unknown: nothing to post
            fields = dict(reader.fields, name=f"Officer {answer.ping_id}")
            if attempt == 0 and answer.post_at is not None:
                time.sleep(max(0.0, answer.post_at - time.time()))
            action = urlsplit(urljoin(str(page.url), reader.action))
            target = self.urls[post_slot] + action.path + (f"?{action.query}" if action.query else "")
            posted = time.time()
            try:
                response = client.post(target, data=fields)
            except httpx.TransportError:
                answer.responses.append(Response(post_slot, "post", None, "connection", posted, time.time()))
                time.sleep(0.3)
                continue
            kind = classify(response)
            answer.responses.append(Response(post_slot, "post", response.status_code, kind, posted, time.time()))
            if kind in ("error", "csrf", "ratelimited", "form"):
                time.sleep(0.3)
                continue  # an officer who sees an error tries again
            return


def _epoch(value: object) -> float:
    from commtest.clock import ensure_utc

    return ensure_utc(value).timestamp()  # type: ignore[arg-type]
