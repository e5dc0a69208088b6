"""``GET /calendar/{token}.ics``: an organisation's announced tests as an iCalendar feed
(RFC 5545, written with ``icalendar``), for the centre's own calendar.

Only announced tests are in it — planned, running, done, and called off ones (``STATUS:
CANCELLED``, so a calendar that had it drops it). An unannounced test never appears, not
even after it ran. The token (``commtest.access.feeds``) names the organisation; a revoked or
unknown one is 404. Texts are in the organisation's first language the officer catalogue has
(or ``?lang=``).
"""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import col, select

from commtest.access.feeds import organisation_of_feed
from commtest.channel_names import CHANNELS
from commtest.db import read_session
from commtest.i18n import Texts, pick_first
from commtest.models import Organisation, RunStatus, TestRun
from playbooks.schema import PlaybookSpec
from scheduler.specs import spec_for_revision
from web.ack import AckContext

SHOWN = (RunStatus.planned.value, RunStatus.running.value, RunStatus.completed.value, RunStatus.aborted.value)
HISTORY = timedelta(days=400)


def expected_length(spec: PlaybookSpec) -> timedelta:
    """How long the test may keep the desk busy: the latest deadline of its first steps,
    retries included (at least 15 minutes)."""
    longest = timedelta(minutes=15)
    for step in spec.initial_steps():
        end = step.start_after + step.ack_deadline * (step.retries + 1) + step.retry_interval * step.retries
        longest = max(longest, end)
    return longest


def calendar_router(ctx: AckContext) -> APIRouter:
    router = APIRouter()
    host = urlsplit(ctx.settings.public_base_url).hostname or "commtest"

    @router.get("/calendar/{token}.ics")
    def feed(request: Request, token: str, lang: str | None = None) -> Response:
        from icalendar import Calendar, Event  # imported on the first feed: about 8 MB the daemon need not carry

        organisation = organisation_of_feed(ctx.engine, token)
        if organisation is None:
            return Response("no such calendar\n", status_code=404, media_type="text/plain")
        now = ctx.clock.now()
        with read_session(ctx.engine) as s:
            org = s.exec(select(Organisation).where(Organisation.code == organisation)).first()
            language = pick_first([lang, *(org.languages if org else [])], "officer")
            t = Texts("officer", language, org.timezone if org else ctx.settings.timezone)
            cal = Calendar()
            cal.add("prodid", "-//commtest//announced communication tests//EN")
            cal.add("version", "2.0")
            cal.add("calscale", "GREGORIAN")
            cal.add("x-wr-calname", t("Communication tests: %(organisation)s", organisation=org.name if org else organisation))
            runs = s.exec(select(TestRun).where(TestRun.announced == True, col(TestRun.status).in_(SHOWN),  # noqa: E712
                                                col(TestRun.fire_at) >= now - HISTORY)
                          .order_by(col(TestRun.fire_at))).all()
            for run in runs:
                spec = spec_for_revision(s, run.revision_id)
                if organisation not in {p.organisation for p in spec.participants} or run.fire_at is None:
                    continue
                channels = ", ".join(t(CHANNELS.get(c, c)) for c in spec.channels())
                event = Event()
                event.add("uid", f"commtest-run-{run.id}@{host}")
                event.add("dtstamp", now)
                event.add("dtstart", run.fire_at)
                event.add("dtend", run.fire_at + expected_length(spec))
                event.add("summary", t("Communication test: %(title)s", title=spec.title_in(language)))
                event.add("description", t("An announced communication test. Your duty desk will be contacted by: "
                                           "%(channels)s. Please answer each message as you normally would.",
                                           channels=channels))
                event.add("status", "CANCELLED" if run.status == RunStatus.aborted.value else "CONFIRMED")
                event.add("transp", "TRANSPARENT")
                cal.add_component(event)
        return Response(cal.to_ical(), media_type="text/calendar; charset=utf-8",
                        headers={"Content-Disposition": f'inline; filename="commtest-{organisation}.ics"',
                                 "Cache-Control": "no-store"})

    return router
