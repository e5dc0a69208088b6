"""Pausing and resuming a schedule (the CLI, the console and the API call this).

Pausing withdraws the schedule's planned, not yet started run (status aborted, with the
reason); resuming lets the leader plan the next one. Each is an audit event with the user.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from commtest import events as ev
from commtest.db import session_scope
from commtest.errors import NotFoundError
from commtest.models import RunStatus, Schedule, TestRun


def find_schedule(s: Session, ref: str) -> Schedule:
    """``PLAYBOOK_ID:KEY`` or the schedule's number."""
    row: Schedule | None
    if ":" in ref:
        pid, key = ref.split(":", 1)
        row = s.exec(select(Schedule).where(Schedule.playbook_id == pid, Schedule.key == key)).first()
    elif ref.isdigit():
        row = s.get(Schedule, int(ref))
    else:
        row = None
    if row is None:
        raise NotFoundError(f"schedule {ref!r} not found; give PLAYBOOK_ID:KEY as `commtest schedule list` shows")
    return row


def set_paused(engine: Engine, ref: str, paused: bool, now: datetime, *, actor: str, by: str) -> Schedule:
    with session_scope(engine) as s:
        sch = find_schedule(s, ref)
        withdrawn: list[int] = []
        if sch.paused != paused:
            sch.paused = paused
            sch.updated_at = now
            s.add(sch)
            if paused:
                for run in s.exec(select(TestRun).where(TestRun.schedule_id == sch.id,
                                                        TestRun.status == RunStatus.planned.value)).all():
                    run.status = RunStatus.aborted.value
                    run.finished_at = now
                    s.add(run)
                    withdrawn.append(run.id or 0)
                    ev.record_event(s, at=now, actor=actor, kind=ev.RUN_ABORTED, run_id=run.id, by=by,
                                    reason="schedule paused before the run started")
            ev.record_event(s, at=now, actor=actor, kind=ev.SCHEDULE_PAUSED if paused else ev.SCHEDULE_RESUMED,
                            schedule=f"{sch.playbook_id}:{sch.key}", by=by, withdrawn=withdrawn)
        s.flush()
        return sch
