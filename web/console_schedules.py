"""Schedules (pause, resume) and "run now": a dry-run preview of every ping, then a start.

Starting creates the run (``RunEngine.create_run``) and leaves it to the scheduler leader,
which starts it within a tick. A playbook that needs a channel kind with no provider is
refused with the reason, before anything is created.
"""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from commtest.db import read_session
from commtest.errors import CommtestError, NotFoundError
from commtest.i18n import N_
from commtest.models import Playbook, RunStatus, Schedule, TestRun
from commtest.schedules import set_paused
from commtest.users import OPERATING_ROLES
from commtest.vocabulary import name_of
from scheduler.specs import spec_for_revision
from web.console_auth import ConsoleContext, actor_of, may_operate
from web.planned_tests import describe_window


def preview_of(ctx: ConsoleContext, playbook_id: str, lang: str) -> dict[str, object]:
    """Every ping a run started now would send first, the steps kept for escalation, and
    what the settings say of each channel kind (real, SIMULATED, not configured)."""
    from scheduler.engine import refusal
    from scheduler.planner import initial_plan

    t = ctx.texts(lang)
    with read_session(ctx.engine) as s:
        pb = s.get(Playbook, playbook_id)
        if pb is None or pb.current_revision_id is None:
            raise NotFoundError(f"playbook {playbook_id!r} not found")
        spec = spec_for_revision(s, pb.current_revision_id)
        planned, gaps = initial_plan(s, spec)
    pings = [{"organisation": p.target.organisation_code, "contact_point": p.target.contact_point_code,
              "name": p.target.contact_name, "step": p.step.id, "channel": name_of("channel", p.step.channel, t),
              "address": p.address, "language": p.target.language,
              "after": t.duration(p.step.start_after.total_seconds() * 1000),
              "deadline": t.duration(p.step.ack_deadline.total_seconds() * 1000)} for p in planned]
    later = [f"{st.id} ({name_of('channel', st.channel, t)})" for st in spec.steps if st not in spec.initial_steps()]
    kinds = [(name_of("channel", k, t), ctx.settings.channel_status(k)) for k in spec.channels()]
    missing = [k for k in spec.channels() if not ctx.settings.providers(k)]
    return {"playbook_id": playbook_id, "title": spec.title_in(t.language), "pings": pings, "later": later,
            "kinds": kinds, "refusal": refusal(spec, missing) if missing else "",
            "gaps": [f"{g[0].contact_point_code if g[0] else ''} {name_of('channel', g[1].channel, t)}: {g[2]}"
                     for g in gaps]}


def router(ctx: ConsoleContext) -> APIRouter:
    r = APIRouter()

    @r.get("/console/schedules", response_class=HTMLResponse)
    def schedules(request: Request) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        t = ctx.texts(lang)
        rows = []
        with read_session(ctx.engine) as s:
            for sch in s.exec(select(Schedule).order_by(col(Schedule.playbook_id), col(Schedule.key))).all():
                spec = spec_for_revision(s, sch.revision_id)
                sspec = next((x for x in spec.schedules if x.key == sch.key), None)
                tz = sspec.timezone if sspec and sspec.timezone else spec.timezone
                run = s.exec(select(TestRun).where(TestRun.schedule_id == sch.id,
                                                   TestRun.status == RunStatus.planned.value)).first()
                if sch.paused:
                    nxt = t("paused: nothing planned")
                elif run is not None and sch.announced:
                    nxt = t.when(run.fire_at)
                elif sspec is not None and sspec.window is not None:
                    nxt = t("in window %(window)s", window=describe_window(sspec, tz, run.fire_at if run else None, t))
                elif sspec is not None and sspec.cron:
                    nxt = t("at the moments of %(cron)s (%(zone)s)", cron=sspec.cron, zone=tz)
                else:
                    nxt = "–"
                rows.append({"id": sch.id, "ref": f"{sch.playbook_id}:{sch.key}", "playbook_id": sch.playbook_id,
                             "description": sch.description, "announced": sch.announced, "paused": sch.paused,
                             "next": nxt, "last": t.when(sch.last_fire_at) if sch.last_fire_at else "–"})
            playbooks = [(p.id, p.current_revision_id is not None) for p in s.exec(select(Playbook)
                                                                                  .order_by(col(Playbook.id))).all()]
        return ctx.render(request, "console_schedules.html", lang, title=t("Schedules"), session=session,
                          schedules=rows, playbooks=playbooks)

    @r.post("/console/schedules/{schedule_id}/{action}", response_class=HTMLResponse)
    async def pause_resume(request: Request, schedule_id: int, action: str) -> Response:
        lang = ctx.lang(request)
        session, _form, refusal = await ctx.posted(request, lang)
        if refusal is not None or session is None:
            return refusal or ctx.must_sign_in(request, lang)
        if action not in ("pause", "resume"):
            t = ctx.texts(lang)
            return ctx.notice(request, lang, t("Page not found"), t("There is no page at this address."), 404, session)
        if not may_operate(session):
            return ctx.forbidden(request, lang, session, OPERATING_ROLES, N_("pause or resume a schedule"))
        try:
            await run_in_threadpool(set_paused, ctx.engine, str(schedule_id), action == "pause", ctx.clock.now(),
                                    actor=actor_of(session), by=session.user.username)
        except NotFoundError as exc:
            t = ctx.texts(lang)
            return ctx.notice(request, lang, t("No such schedule"), str(exc), 404, session)
        return RedirectResponse(f"/console/schedules?lang={lang}", status_code=303)

    @r.get("/console/playbooks/{playbook_id}/run", response_class=HTMLResponse)
    def preview(request: Request, playbook_id: str) -> Response:
        lang = ctx.lang(request)
        session = ctx.session(request)
        if session is None:
            return ctx.login_redirect(request, lang)
        t = ctx.texts(lang)
        try:
            data = preview_of(ctx, playbook_id, lang)
        except NotFoundError:
            return ctx.notice(request, lang, t("No such playbook"),
                              t("There is no playbook %(id)s with a valid revision.", id=playbook_id[:100]), 404, session)
        return ctx.render(request, "console_preview.html", lang, title=t("Run %(playbook)s now", playbook=playbook_id),
                          session=session, p=data)

    @r.post("/console/playbooks/{playbook_id}/run", response_class=HTMLResponse)
    async def start(request: Request, playbook_id: str) -> Response:
        lang = ctx.lang(request)
        session, form, refusal = await ctx.posted(request, lang)
        if refusal is not None or session is None:
            return refusal or ctx.must_sign_in(request, lang)
        if not may_operate(session):
            return ctx.forbidden(request, lang, session, OPERATING_ROLES, N_("start or abort a test"))

        def work() -> Response:
            from scheduler.engine import RunEngine

            t = ctx.texts(lang)
            runs = RunEngine(ctx.engine, ctx.settings, ctx.clock, actor=actor_of(session))
            try:
                runs.refuse_unconfigured(playbook_id)
                run_id = runs.create_run(playbook_id, started_by=session.user.username,
                                         note=form.get("note", "").strip()[:2000])
            except CommtestError as exc:
                return ctx.notice(request, lang, t("Not started"), str(exc), 409, session,
                                  link=(f"/console/playbooks/{playbook_id}/run?lang={lang}", t("Back to the preview")))
            finally:
                runs.close()
            return RedirectResponse(f"/console/runs/{run_id}?lang={lang}", status_code=303)

        return await run_in_threadpool(work)

    return r
