"""``/ack/{token}``: GET and HEAD show what is being confirmed and change nothing; POST
confirms (CSRF-checked) and shows the measured response time.

The POST checks the cheap things first: the token's shape, then the body's size
(``Content-Length`` and the bytes actually read, before any parsing), and only then parses the
small form. A form whose CSRF field this ping's page issued is recorded straight away (the
writer reads the ping in its transaction and judges used, expired and closed links); any other
is judged on the ping's page first (unknown, used, expired, forged, a video ping). Database work runs off the event loop (the writer
thread, the pages' own threads) with one exception: on SQLite, the page's one indexed read of
its token, which never waits for a lock (``AckContext.lookup``, ``commtest.point_read``).

A run that has closed stays closed: its links thank the officer and say the test had closed
(or was called off), and the answer changes nothing.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable, TypeVar
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from commtest.clock import Clock, SystemClock
from commtest.db import sqlite_path
from commtest.i18n import format_duration, format_moment
from commtest.models import RunStatus
from commtest.point_read import PointRead
from commtest.settings import Settings
from commtest.vocabulary import name_of
from scheduler.ack_group import Answer
from scheduler.ack_process import ProcessAckWriter, WriterGone
from scheduler.ack_writer import AckWriter
from scheduler.acks import AckOutcome, TokenInfo, is_well_formed, lookup_token, token_reader
from scheduler.records import token_hash
from web.ack_frames import FilledPage, done_frame, form_frame
from web.csrf import CSRF_FIELD, CsrfSigner
from web.i18n import pick_language
from web.officer_video import VideoPage, join_of, not_by_link, video_page
from web.pages import message, page, texts

log = logging.getLogger(__name__)

METHOD = "link"
T = TypeVar("T")
# The confirmation form is a CSRF token and an optional name: a few hundred bytes.
MAX_FORM_BYTES = 4096
# What keeps an answer from being recorded for a moment (the database restarting, the writer
# process restarting): the page answers 503 with this Retry-After rather than 500.
RECORDING_UNAVAILABLE = (WriterGone, OperationalError)
RETRY_AFTER_SECONDS = 5
# Threads for the pages' reads (one indexed query each). A few: handing a 0.1 ms query to one of
# anyio's forty threads cost more in switching and waiting for the GIL than the query itself.
READ_THREADS = 4


@dataclass(frozen=True)
class AckContext:
    settings: Settings
    engine: Engine
    clock: Clock
    signer: CsrfSigner
    writer: AckWriter | ProcessAckWriter = field(default=None)  # type: ignore[assignment]
    reads: ThreadPoolExecutor = field(default=None)  # type: ignore[assignment]
    tokens: PointRead | None = field(default=None)

    def __post_init__(self) -> None:
        if self.writer is None:
            object.__setattr__(self, "writer", self._writer())
        if self.reads is None:
            object.__setattr__(self, "reads", ThreadPoolExecutor(READ_THREADS, thread_name_prefix="ack-read"))
        if self.tokens is None:
            object.__setattr__(self, "tokens", token_reader(self.engine))

    def _writer(self) -> AckWriter | ProcessAckWriter:
        """A writer process where it can be one: the real clock (a test's frozen clock cannot
        cross to another process) and a database another process can open."""
        if (self.settings.ack_writer == "process" and isinstance(self.clock, SystemClock)
                and (self.engine.dialect.name != "sqlite" or sqlite_path(str(self.engine.url)) is not None)):
            url = self.engine.url.render_as_string(hide_password=False)
            return ProcessAckWriter(self.settings.model_copy(update={"database_url": url}))
        return AckWriter(self.engine, self.clock, self.settings)

    async def lookup(self, token: str) -> TokenInfo | None:
        """The ping behind a well-formed ``token``. On a SQLite file the one indexed read runs
        right here on the event loop: in WAL mode it never waits for a lock (commtest.point_read),
        and it costs less than handing it to a thread (~15 µs against ~100 µs and a wait for
        the GIL). On PostgreSQL, and when SQLite answers busy, it runs on the pages' threads."""
        if self.tokens is not None:
            try:
                info: TokenInfo | None = self.tokens.first(token_hash=token_hash(token))
            except sqlite3.Error:
                log.debug("ack: the direct token read was refused; reading through the engine", exc_info=True)
            else:
                return info
        return await self.read(lookup_token, self.engine, token)

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` (a short database read) off the event loop, on the pages' own threads."""
        return await asyncio.get_running_loop().run_in_executor(self.reads, fn, *args)


class BodyTooLarge(Exception):
    pass


async def read_small_form(request: Request, limit: int = MAX_FORM_BYTES) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body of at most ``limit`` bytes, refused
    before parsing (by its ``Content-Length``, and by the bytes read when it lies or streams)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise BodyTooLarge
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=16)
    return {k: v[0] for k, v in parsed.items() if v}


Handler = Callable[[Request, str, "str | None"], Awaitable[HTMLResponse]]


@dataclass(frozen=True)
class AckHandlers:
    """The page and the confirmation of one acknowledgement link: as routes of the app, and as
    handlers that ``web.app.GuardMiddleware`` calls directly for a well-formed link."""

    show: Handler
    confirm: Handler
    router: APIRouter


def ack_handlers(ctx: AckContext) -> AckHandlers:
    router = APIRouter()

    def closed_page(request: Request, info: TokenInfo, language: str, answered_at: datetime | None,
                    base: str | None = None) -> HTMLResponse:
        when = format_moment(answered_at or ctx.clock.now(), info.timezone, language)
        closed = format_moment(info.run_finished_at, info.timezone, language)
        key = "called_off" if info.run_status == RunStatus.aborted.value else "closed"
        return message(request, language, key, 200, switch_base=base, when=when, closed=closed)

    @router.api_route("/ack/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
    async def show(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
        base = f"/ack/{token}"
        if not is_well_formed(token):
            return message(request, pick_language(lang, None, ctx.settings.default_language), "malformed", 400)
        info = await ctx.lookup(token)
        if info is None:
            return message(request, pick_language(lang, None, ctx.settings.default_language), "unknown", 404)
        language = pick_language(lang, info.preferred_languages(), ctx.settings.default_language)
        if info.acked_at is not None:
            return message(request, language, "already", 409, switch_base=base,
                           when=format_moment(info.acked_at, info.timezone, language))
        closed = info.run_closed
        if not closed and info.expired(ctx.clock.now()):
            return message(request, language, "expired", 410, switch_base=base)
        # A video ping shows its join link instead of "Confirm" (read from the ping's provider).
        video = await ctx.read(video_page, ctx, info, token, language) if info.channel == "video" else None
        ctx.writer.warm()  # an officer with the form open is about to answer
        # Still a form when the run has closed: an officer who answers now is thanked and the answer is kept.
        return _form(request, info, language, base, video, closed=closed)

    def _form(request: Request, info: TokenInfo, language: str, base: str, video: VideoPage | None,
              closed: bool = False) -> HTMLResponse:
        called_off = info.run_status == RunStatus.aborted.value
        sent = format_moment(info.sent_at, info.timezone, language)
        deadline = format_moment(info.deadline_at, info.timezone, language)
        csrf = ctx.signer.issue(info.token_hash)
        if video is None:  # the plain form: its frame filled (web.ack_frames), the same bytes as a render
            frame = form_frame(language, info.channel, closed, called_off)
            return FilledPage(frame.fill((info.organisation_in(language), info.contact_name, sent, deadline,
                                            csrf, base)))
        t = texts(language)
        return page(
            request, "ack.html", language, switch_base=base, info=info,
            channel_name=name_of("channel", info.channel, t), sent=sent, deadline=deadline,
            csrf=csrf, action=f"{base}?lang={language}", closed=closed, called_off=called_off, video=video,
        )

    @router.post("/ack/{token}", response_class=HTMLResponse)
    async def confirm(request: Request, token: str, lang: str | None = None) -> HTMLResponse:
        fallback = pick_language(lang, None, ctx.settings.default_language)
        if not is_well_formed(token):
            return message(request, fallback, "malformed", 400)
        try:
            form = await read_small_form(request)
        except BodyTooLarge:
            info = await ctx.lookup(token)
            if info is None:
                return message(request, fallback, "unknown", 404)
            return message(request, language_of(info, lang), "toolarge", 413)
        if ctx.signer.check(token_hash(token), form.get(CSRF_FIELD, "")):
            # The form this ping's page issued: recorded straight away, the writer reading the ping
            # in its transaction (it judges used and expired links as the checks below would).
            try:
                outcome = await record(request, token, form, checked=False)
            except RECORDING_UNAVAILABLE:
                return unavailable(request, fallback)
            if outcome.status != "check":
                return answered(request, token, lang, outcome)
        info = await ctx.lookup(token)
        if info is None:
            return message(request, fallback, "unknown", 404)
        language = language_of(info, lang)
        # Used or expired links get their own page whatever the form holds: nothing would be recorded.
        if info.acked_at is not None:
            return message(request, language, "already", 409,
                           when=format_moment(info.acked_at, info.timezone, language))
        if info.expired(ctx.clock.now()) and not info.run_closed:
            return message(request, language, "expired", 410)
        if not ctx.signer.check(info.token_hash, form.get(CSRF_FIELD, "")):
            return message(request, language, "csrf", 403, again=f"/ack/{token}?lang={language}")
        if info.channel == "video" and await ctx.read(join_of, ctx, info) is not None:
            return not_by_link(request, language, token)  # a video ping is answered by joining the room
        try:
            return answered(request, token, lang, await record(request, token, form, checked=True))
        except RECORDING_UNAVAILABLE:
            return unavailable(request, language)

    def unavailable(request: Request, language: str) -> HTMLResponse:
        """The answer could not be recorded right now (the database or the writer process is
        restarting): 503 and a moment to wait, never a 2xx; the officer's retry is judged anew."""
        log.warning("ack: an answer could not be recorded right now; the page says to try again", exc_info=True)
        response = message(request, language, "error", 503)
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    def language_of(info: TokenInfo, lang: str | None) -> str:
        return pick_language(lang, info.preferred_languages(), ctx.settings.default_language)

    async def record(request: Request, token: str, form: dict[str, str], checked: bool) -> AckOutcome:
        """Recorded by the writer thread with the answers that came in meanwhile, in one durable
        commit (group commit); the page answers once that commit is on disk."""
        name = form.get("name")
        return await ctx.writer.submit_async(Answer(
            token, METHOD, by=name[:200] if name else None, user_agent=request.headers.get("user-agent"),
            source=request.client.host if request.client else None, checked=checked))

    def answered(request: Request, token: str, lang: str | None, outcome: AckOutcome) -> HTMLResponse:
        info = outcome.info
        if info is None:  # the ping is gone
            return message(request, pick_language(lang, None, ctx.settings.default_language), "unknown", 404)
        language = language_of(info, lang)
        zone = outcome.timezone or info.timezone
        if outcome.status == "acked":
            return FilledPage(done_frame(language, outcome.late).fill((
                format_moment(outcome.acked_at, zone, language), format_duration(outcome.response_ms, language))))
        if outcome.status == "after_close":
            closed_info = info._replace(run_status=outcome.run_status,
                                        run_finished_at=outcome.run_finished_at or info.run_finished_at)
            return closed_page(request, closed_info, language, outcome.acked_at)
        if outcome.status == "already":
            return message(request, language, "already", 409, when=format_moment(outcome.acked_at, zone, language))
        if outcome.status == "expired":
            return message(request, language, "expired", 410)
        return message(request, language, "unknown", 404)

    return AckHandlers(show, confirm, router)
