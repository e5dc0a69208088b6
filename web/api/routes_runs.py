"""``/schedules`` (list, pause, resume) and ``/runs`` (list, start, read, live status, abort,
record a manual outcome)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool

from commtest.db import read_session, session_scope
from commtest.errors import CommtestError, ConfigError, NotFoundError
from commtest.facts import facts_of_run
from commtest.models import Ping, Schedule, TestRun
from commtest.schedules import set_paused
from commtest.users import UserInfo
from scheduler.records import OPEN_STATES
from scheduler.specs import spec_for_revision
from web.api.auth import current_user, operator
from web.api.common import PageParams, api_of, page_params, paged
from web.api.problems import ProblemError
from web.api.schemas import AbortRun, AckOut, ManualOutcome, Page, RunOut, RunStatusOut, ScheduleOut, StartRun
from web.planned_tests import may_show_moment

router = APIRouter()


def _schedule(sch: Schedule) -> dict[str, Any]:
    return {"id": sch.id, "ref": f"{sch.playbook_id}:{sch.key}", "description": sch.description,
            "announced": sch.announced, "paused": sch.paused,
            "next_fire_at": sch.next_fire_at if sch.announced and not sch.paused else None,
            "last_fire_at": sch.last_fire_at}


def _run(s: Any, run: TestRun) -> dict[str, Any]:
    simulated = s.exec(select(func.count()).select_from(Ping).where(Ping.run_id == run.id,
                                                                    Ping.simulated == True)).one() > 0  # noqa: E712
    return {"id": run.id, "playbook_id": run.playbook_id, "revision_id": run.revision_id, "status": run.status,
            "trigger": run.trigger, "announced": run.announced,
            "fire_at": run.fire_at if may_show_moment(run) else None, "started_at": run.started_at,
            "finished_at": run.finished_at, "started_by": run.started_by, "simulated": bool(simulated)}


def _load_run(s: Any, run_id: int) -> TestRun:
    run = s.get(TestRun, run_id)
    if run is None:
        raise ProblemError(404, f"no run {run_id}", slug="not-found")
    return run  # type: ignore[no-any-return]


@router.get("/schedules", response_model=Page[ScheduleOut], tags=["schedules"], summary="The schedules")
def list_schedules(request: Request, params: PageParams = Depends(page_params),
                   user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    api = api_of(request)
    with read_session(api.engine) as s:
        total = int(s.exec(select(func.count()).select_from(Schedule)).one())
        rows = s.exec(select(Schedule).order_by(col(Schedule.playbook_id), col(Schedule.key))
                      .limit(params.limit).offset(params.offset)).all()
        return paged(request, [_schedule(r) for r in rows], total, params)


def _pause(request: Request, schedule_id: int, paused: bool, user: UserInfo) -> dict[str, Any]:
    api = api_of(request)
    try:
        sch = set_paused(api.engine, str(schedule_id), paused, api.clock.now(), actor=f"api:{user.username}",
                         by=user.username)
    except NotFoundError as exc:
        raise ProblemError(404, str(exc), slug="not-found") from None
    return _schedule(sch)


@router.post("/schedules/{schedule_id}/pause", response_model=ScheduleOut, tags=["schedules"],
             summary="Pause a schedule (its planned run is withdrawn)")
def pause(request: Request, schedule_id: int, user: UserInfo = Depends(operator)) -> dict[str, Any]:
    return _pause(request, schedule_id, True, user)


@router.post("/schedules/{schedule_id}/resume", response_model=ScheduleOut, tags=["schedules"],
             summary="Resume a schedule")
def resume(request: Request, schedule_id: int, user: UserInfo = Depends(operator)) -> dict[str, Any]:
    return _pause(request, schedule_id, False, user)


@router.get("/runs", response_model=Page[RunOut], tags=["runs"], summary="The runs, newest first")
def list_runs(request: Request, params: PageParams = Depends(page_params),
              user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    api = api_of(request)
    with read_session(api.engine) as s:
        total = int(s.exec(select(func.count()).select_from(TestRun)).one())
        rows = s.exec(select(TestRun).order_by(col(TestRun.id).desc()).limit(params.limit).offset(params.offset)).all()
        return paged(request, [_run(s, r) for r in rows], total, params)


@router.post("/runs", response_model=RunOut, status_code=201, tags=["runs"],
             summary="Start a test now (the scheduler leader starts it within a tick)")
def start_run(request: Request, body: StartRun, user: UserInfo = Depends(operator)) -> dict[str, Any]:
    from scheduler.engine import RunEngine

    api = api_of(request)
    runs = RunEngine(api.engine, api.settings, api.clock, actor=f"api:{user.username}")
    try:
        runs.refuse_unconfigured(body.playbook_id)
        run_id = runs.create_run(body.playbook_id, started_by=user.username, note=body.note)
    except NotFoundError as exc:
        raise ProblemError(404, str(exc), slug="not-found") from None
    except ConfigError as exc:
        raise ProblemError(409, str(exc), slug="channel-not-configured") from None
    finally:
        runs.close()
    with read_session(api.engine) as s:
        return _run(s, _load_run(s, run_id))


@router.get("/runs/{run_id}", response_model=RunOut, tags=["runs"], summary="A run")
def get_run(request: Request, run_id: int, user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    with read_session(api_of(request).engine) as s:
        return _run(s, _load_run(s, run_id))


@router.get("/runs/{run_id}/status", response_model=RunStatusOut, tags=["runs"],
            summary="Live status: every check and verdict as the event log gives them now")
def run_status(request: Request, run_id: int, user: UserInfo = Depends(current_user)) -> dict[str, Any]:
    with read_session(api_of(request).engine) as s:
        run = _load_run(s, run_id)
        facts = facts_of_run(s.connection(), run_id, spec_for_revision(s, run.revision_id).fact_rules())
        open_attempts = s.exec(select(func.count()).select_from(Ping).where(
            Ping.run_id == run_id, col(Ping.state).in_(OPEN_STATES))).one()
        out = _run(s, run)
    return {"run": out, "open_attempts": open_attempts,
            "verdicts": [{"organisation": v.organisation_code, "channel": v.channel, "verdict": v.verdict,
                          "answer": v.answer, "checks": v.checks, "answered": v.answered, "response_ms": v.response_ms,
                          "simulated": v.simulated} for v in facts.verdicts],
            "checks": [{"organisation": c.organisation_code, "contact_point": c.contact_point_code, "channel": c.channel,
                        "status": c.status, "outcome": c.outcome, "attempts_sent": c.attempts_sent,
                        "attempts_planned": c.attempts_planned, "first_contact_at": c.first_contact_at,
                        "answered_at": c.answered_at, "response_ms": c.response_ms, "method": c.method,
                        "simulated": c.simulated} for c in facts.checks]}


@router.post("/runs/{run_id}/abort", response_model=RunOut, tags=["runs"],
             summary="Abort a run: attempts not sent are cancelled; answers already in still count")
def abort_run(request: Request, run_id: int, body: AbortRun, user: UserInfo = Depends(operator)) -> dict[str, Any]:
    from scheduler.engine import RunEngine

    api = api_of(request)
    runs = RunEngine(api.engine, api.settings, api.clock, actor=f"api:{user.username}")
    try:
        runs.abort_run(run_id, by=user.username, reason=body.reason)
    except NotFoundError as exc:
        raise ProblemError(404, str(exc), slug="not-found") from None
    except CommtestError as exc:
        raise ProblemError(409, str(exc), slug="run-closed") from None
    finally:
        runs.close()
    with read_session(api.engine) as s:
        return _run(s, _load_run(s, run_id))


@router.post("/runs/{run_id}/manual", response_model=AckOut, tags=["runs"],
             summary="Record an answer received outside commtest (outcome manual)")
async def manual(request: Request, run_id: int, body: ManualOutcome, user: UserInfo = Depends(operator)) -> dict[str, Any]:
    from scheduler.records import acknowledge

    api = api_of(request)

    def work() -> dict[str, Any]:
        now = api.clock.now()
        with session_scope(api.engine, durable=True) as s:
            ping = s.get(Ping, body.ping_id)
            if ping is None or ping.run_id != run_id:
                raise ProblemError(404, f"run {run_id} has no attempt {body.ping_id}", slug="not-found")
            if ping.state in ("pending", "cancelled"):
                raise ProblemError(409, f"attempt {body.ping_id} was not sent ({ping.state}); nothing to answer",
                                   slug="not-sent")
            result = acknowledge(s, ping, max(now, ping.sent_at or ping.dispatching_at or now),
                                 method=f"manual:{body.how}"[:32], actor=f"api:{user.username}", by=body.by or None)
        return {"ping_id": body.ping_id, "status": result.status, "response_ms": result.response_ms,
                "acked_at": result.acked_at}

    return await run_in_threadpool(work)
