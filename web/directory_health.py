"""The directory's health for the overview: gaps against what the stored playbooks need,
stale verifications, endpoints flagged suspect or invalid, corrections waiting."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from commtest.corrections import count_pending
from commtest.db import read_session
from commtest.directory import Gap, Requirement, find_gaps, snapshot
from commtest.models import Playbook, Schedule
from scheduler.specs import spec_for_revision


@dataclass(frozen=True)
class Health:
    gaps: list[Gap]
    by_kind: dict[str, int]
    pending_corrections: int


def requirements(s: Session) -> list[Requirement]:
    """What the playbooks with a schedule need, as `directory check` derives it."""
    out: list[Requirement] = []
    scheduled = select(Schedule.playbook_id)
    for pb in s.exec(select(Playbook).where(col(Playbook.id).in_(scheduled))).all():
        if pb.current_revision_id is None:
            continue
        spec = spec_for_revision(s, pb.current_revision_id)
        for participant in spec.participants:
            channels = frozenset(step.channel for step in spec.steps if step.pings(participant.organisation))
            for fld in participant.fields:
                out.append(Requirement(participant.organisation, fld, channels, spec.id))
    return out


def directory_health(engine: Engine, now: datetime, max_age_days: int) -> Health:
    with read_session(engine) as s:
        gaps = find_gaps(snapshot(s), requirements(s), now=now, max_age_days=max_age_days)
    by_kind: dict[str, int] = {}
    for g in gaps:
        by_kind[g.kind] = by_kind.get(g.kind, 0) + 1
    return Health(gaps, by_kind, count_pending(engine))
