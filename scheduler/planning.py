"""From schedules to planned runs: the leader draws each schedule's next moment once and
stores it as a planned ``TestRun`` (unique on schedule + fire time), so a restart or a
second replica never draws again."""
from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from typing import Any

from sqlalchemy import func
from sqlmodel import col, select

from channels.base import Notice, NoticeSender
from commtest import events as ev
from commtest.masking import mask_address
from commtest.db import session_scope
from commtest.models import Playbook, RunStatus, Schedule, TestRun
from scheduler.engine import RunEngine
from scheduler.specs import spec_for_revision
from scheduler.timing import next_occurrence

log = logging.getLogger(__name__)


def _after_month_of(moment: datetime, tz: str) -> datetime:
    """The first instant of the month after ``moment``'s local month: one test per named month."""
    local = moment.astimezone(ZoneInfo(tz))
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    return datetime(year, month, 1, tzinfo=ZoneInfo(tz)) - timedelta(seconds=1)


def plan_schedules(runs: RunEngine, now: datetime, rng: random.Random) -> list[int]:
    """Make sure every active schedule has its next run planned; returns new run ids."""
    created: list[int] = []
    with session_scope(runs.engine) as s:
        rows = s.exec(
            select(Schedule, Playbook)
            .join(Playbook, col(Playbook.id) == col(Schedule.playbook_id))
            .where(Schedule.paused == False)  # noqa: E712
        ).all()
        todo = []
        for sch, pb in rows:
            waiting = s.exec(select(TestRun.id).where(TestRun.schedule_id == sch.id,
                                                      TestRun.status == RunStatus.planned.value)).first()
            if waiting is not None:
                continue
            spec = spec_for_revision(s, sch.revision_id)
            sspec = next((x for x in spec.schedules if x.key == sch.key), None)
            if sspec is None:
                continue
            # Runs withdrawn before they started (schedule paused) do not use up their month.
            latest = s.exec(select(func.max(TestRun.fire_at)).where(
                TestRun.schedule_id == sch.id,
                (col(TestRun.started_at).is_not(None)) | (TestRun.status == RunStatus.missed.value))).one()
            after = now
            if latest is not None:
                after = max(after, _after_month_of(latest, sspec.timezone or spec.timezone) if sspec.months else latest)
            todo.append((sch.id, pb.id, sspec, spec.timezone, after))
    for sch_id, playbook_id, sspec, tz, after in todo:
        occ = next_occurrence(sspec, tz, after, rng)
        if occ is None:
            log.warning("schedule %s/%s never fires again", playbook_id, sspec.key)
            continue
        window = (occ.window_start, occ.window_end) if occ.window_start and occ.window_end else None
        run_id = runs.create_run(
            playbook_id, trigger="schedule", fire_at=occ.fire_at, schedule_id=sch_id,
            dedupe_key=f"{sch_id}@{occ.fire_at.isoformat()}", announced=sspec.announced, window=window,
            started_by=f"schedule:{sspec.key}",
        )
        with session_scope(runs.engine) as s:
            run = s.get(TestRun, run_id)
            if run is not None and run.status == RunStatus.aborted.value and run.started_at is None:
                # The same moment was planned before and withdrawn when the schedule was
                # paused; (schedule, fire time) stays unique, so that run is planned again.
                run.status = RunStatus.planned.value
                run.finished_at = None
                s.add(run)
                ev.record_event(s, at=now, actor=runs.actor, kind=ev.RUN_PLANNED, run_id=run.id,
                                playbook_id=playbook_id, revision_id=run.revision_id, schedule_id=sch_id,
                                trigger="schedule", fire_at=run.fire_at, announced=run.announced,
                                note="planned again: its schedule was resumed")
            row = s.get(Schedule, sch_id)
            if row is not None:
                row.next_fire_at = occ.fire_at
                row.updated_at = now
                s.add(row)
        created.append(run_id)
        # Unannounced: the moment is a secret of the database; the log says only the window.
        if sspec.announced:
            log.info("planned run=%s of %s/%s at %s", run_id, playbook_id, sspec.key, occ.fire_at.isoformat())
        else:
            log.info("planned unannounced run=%s of %s/%s inside its window", run_id, playbook_id, sspec.key)
    return created


def announce_due(runs: RunEngine, now: datetime) -> int:
    """Announce announced runs whose ``announce_before`` has come: one e-mail to each
    participant contact point's best e-mail endpoint, from the playbook's announcement
    template. Recorded first (``run.announced``), then sent: a crash in between loses an
    announcement rather than sending it twice."""
    from commtest.models import Event

    due: list[tuple[int, list[Notice]]] = []
    with session_scope(runs.engine) as s:
        planned = s.exec(select(TestRun).where(TestRun.status == RunStatus.planned.value,
                                               TestRun.announced == True)).all()  # noqa: E712
        for run in planned:
            if run.schedule_id is None or run.fire_at is None:
                continue
            sch = s.get(Schedule, run.schedule_id)
            spec = spec_for_revision(s, run.revision_id)
            sspec = next((x for x in spec.schedules if sch and x.key == sch.key), None)
            if sspec is None or sspec.announce_before is None or now < run.fire_at - sspec.announce_before:
                continue
            done = s.exec(select(Event.id).where(Event.run_id == run.id, Event.kind == ev.RUN_ANNOUNCED)).first()
            if done is not None:
                continue
            notices = _announcements(s, runs, run, spec, sspec.announce_template)
            ev.record_event(s, at=now, actor=runs.actor, kind=ev.RUN_ANNOUNCED, run_id=run.id, fire_at=run.fire_at,
                            recipients=[f"{n.organisation_code} {mask_address(n.address)}" for n in notices])
            due.append((run.id or 0, notices))
    # Sent after the commit: recorded first, so a crash loses an announcement, never doubles it.
    for run_id, notices in due:
        for notice in notices:
            _send_notice(runs, notice)
        log.info("run=%s announced to %d participant address(es)", run_id, len(notices))
    return len(due)


def _announcements(s: Any, runs: RunEngine, run: TestRun, spec: Any, template: str) -> list[Notice]:
    from commtest.models import Organisation
    from scheduler.messages import render_announcement
    from scheduler.planner import contact_points, usable_endpoints

    # Names per language ({"": name, "fr": ...}): the announcement says them in its own language.
    names = {o.code: {"": o.name, **(o.names or {})} for o in s.exec(
        select(Organisation).where(col(Organisation.code).in_([spec.owner, *(p.organisation for p in spec.participants)]))
    ).all()}
    sender = names.get(spec.owner, {"": spec.owner})
    out: list[Notice] = []
    assert run.fire_at is not None
    for participant in spec.participants:
        for field_code in participant.fields:
            for t in contact_points(s, participant.organisation, field_code, spec.default_language):
                eps = usable_endpoints(s, t.contact_point_id, "email")
                if not eps:
                    continue
                msg = render_announcement(spec, template, run_id=run.id or 0, organisation_code=t.organisation_code,
                                          organisation_name=t.organisation_name, contact_name=t.contact_name,
                                          field_code=t.field_code, language=t.language, timezone=t.timezone,
                                          test_at=run.fire_at, sender=sender[""], sender_names=sender,
                                          organisation_names=names.get(t.organisation_code))
                out.append(Notice(run_id=run.id or 0, channel="email", address=eps[0].address, language=msg.language,
                                  subject=msg.subject, body=msg.body, organisation_code=t.organisation_code,
                                  contact_name=t.contact_name))
    return out


def _send_notice(runs: RunEngine, notice: Notice) -> None:
    try:
        channel = runs.channels.get("email")
        if isinstance(channel, NoticeSender):
            channel.send_notice(notice)
        else:
            log.warning("the e-mail provider cannot send announcements; %s not told", mask_address(notice.address))
    except Exception as exc:  # one unreachable address must not stop the others
        log.warning("announcement to %s failed: %s", mask_address(notice.address), exc)


def mark_fired(runs: RunEngine) -> None:
    """Keep ``Schedule.last_fire_at`` in step with the runs that started or were missed."""
    with session_scope(runs.engine) as s:
        for sch in s.exec(select(Schedule)).all():
            latest = s.exec(select(func.max(TestRun.fire_at)).where(
                TestRun.schedule_id == sch.id, col(TestRun.status) != RunStatus.planned.value)).one()
            if latest is not None and sch.last_fire_at != latest:
                sch.last_fire_at = latest
                s.add(sch)
