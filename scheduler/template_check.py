"""Render a playbook's templates for every contact point the directory gives its participants,
exactly as the engine will: the same contact points (``planner.contact_points``), the same
language choice, the same ``render_ping`` / ``render_announcement``.

The sample values of ``playbook validate`` reach one branch of a template; this reaches the
branches the real organisations, names and languages take, so a misspelt variable under
``{% if organisation.code == "LU-CNC" %}`` fails validation, not a ping at 03:00.
Pure reads; nothing is written.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import Session, func, select

from commtest.models import ContactPoint, Organisation
from playbooks.schema import PlaybookSpec, StepSpec
from playbooks.templates import RenderLimitExceeded, TemplateError
from scheduler.messages import render_announcement, render_ping
from scheduler.planner import Target, contact_points

__all__ = ["DirectoryRender", "TemplateFailure", "directory_is_empty", "render_for_directory"]

# Stand-ins for what only exists once a ping is claimed: same shape as the real ones.
_TOKEN = "T" * 43
_ACK_CODE = "000000"


@dataclass(frozen=True)
class TemplateFailure:
    template: str
    language: str  # the template text used (after fallback), as the playbook names it
    field: str  # subject, body or html
    line: int | None  # inside the template
    reason: str
    contact_point: str  # code of the first contact point it failed for
    contact_language: str  # that contact point's language
    others: int = 0  # further contact points it failed for in the same way

    def describe(self) -> str:
        more = f", and {self.others} other contact point(s)" if self.others else ""
        return f"{self.reason} (rendered for contact point {self.contact_point}, language {self.contact_language}{more})"


@dataclass
class DirectoryRender:
    failures: list[TemplateFailure] = field(default_factory=list)
    rendered: int = 0  # messages rendered
    contact_points: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)  # "ORG/field" without an active contact point


def directory_is_empty(session: Session) -> bool:
    return session.exec(select(func.count()).select_from(ContactPoint)).one() == 0


def render_for_directory(session: Session, spec: PlaybookSpec, *, public_base_url: str, now: datetime) -> DirectoryRender:
    """Render every step's template for every contact point it can reach, and every
    announcement template for every participant, in each test kind the playbook can run."""
    out = DirectoryRender()
    sender = session.exec(select(Organisation.name).where(Organisation.code == spec.owner)).first() or spec.owner
    ack_url = f"{public_base_url.rstrip('/')}/ack/{_TOKEN}"
    # Manual runs are unannounced; scheduled ones are what their schedule says.
    kinds = sorted({False} | {s.announced for s in spec.schedules})
    failed: dict[tuple[str, str, str, int | None, str], list[Target]] = {}
    over_limit: set[str] = set()  # templates that hit a render limit: one report, not one per contact point

    def attempt(template: str, target: Target, render: Callable[[], object]) -> None:
        if template in over_limit:
            return
        try:
            out.rendered += 1
            render()
        except TemplateError as exc:
            if isinstance(exc.__cause__, RenderLimitExceeded):
                over_limit.add(template)
            key = (exc.template or template, exc.language, exc.field, exc.line, exc.reason)
            failed.setdefault(key, []).append(target)

    targets_by_field: dict[tuple[str, str], list[Target]] = {}

    def targets(organisation: str, field_code: str) -> list[Target]:
        key = (organisation, field_code)
        if key not in targets_by_field:
            found = contact_points(session, organisation, field_code, spec.default_language)
            targets_by_field[key] = found
            if not found:
                out.missing.append(f"{organisation}/{field_code}")
            out.contact_points.update(t.contact_point_code for t in found)
        return targets_by_field[key]

    for organisation, step, field_code in _reachable(spec):
        for target in targets(organisation, field_code):
            for announced in kinds:
                attempt(step.template, target, functools.partial(
                    render_ping, spec, step, run_id=1, announced=announced, organisation_code=target.organisation_code,
                    organisation_name=target.organisation_name, contact_name=target.contact_name,
                    field_code=target.field_code, language=target.language, timezone=target.timezone, ack_url=ack_url,
                    ack_code=_ACK_CODE, deadline_at=now + step.ack_deadline, sender=sender, test_at=now))
    for schedule in spec.schedules:
        if not (schedule.announced and schedule.announce_before is not None):
            continue
        for participant in spec.participants:
            for field_code in participant.fields:
                for target in targets(participant.organisation, field_code):
                    attempt(schedule.announce_template, target, functools.partial(
                        render_announcement, spec, schedule.announce_template, run_id=1,
                        organisation_code=target.organisation_code, organisation_name=target.organisation_name,
                        contact_name=target.contact_name, field_code=target.field_code, language=target.language,
                        timezone=target.timezone, test_at=now, sender=sender))
    for (template, language, fld, line, reason), hit in failed.items():
        first = hit[0]
        others = len({t.contact_point_code for t in hit} - {first.contact_point_code})
        out.failures.append(TemplateFailure(template, language, fld, line, reason, first.contact_point_code,
                                            first.language, others))
    return out


def _reachable(spec: PlaybookSpec) -> Iterator[tuple[str, StepSpec, str]]:
    """(organisation, step, field) for every step a run can send, and to which field's
    contact points: the initial steps to the participants' fields, then whatever their
    escalations reach (another step, another field of the same organisation)."""
    seen: set[tuple[str, str, str]] = set()
    todo = [(p.organisation, step.id, f) for p in spec.participants for f in p.fields for step in spec.initial_steps()
            if step.pings(p.organisation)]
    while todo:
        organisation, step_id, field_code = todo.pop(0)
        if (organisation, step_id, field_code) in seen:
            continue
        seen.add((organisation, step_id, field_code))
        step = spec.step(step_id)
        yield organisation, step, field_code
        escalation = spec.escalation_of(step)
        if escalation is not None:
            todo.append((organisation, escalation.step or step_id, escalation.field or field_code))
