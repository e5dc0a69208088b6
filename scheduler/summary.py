"""A run at a glance: one row per organisation and channel (``commtest runs show``).

The same checks and verdicts as the test report (``commtest.facts``, derived from the run's
events), so the terminal and the report never disagree: the verdict follows the playbook's
``answer: any|all``, the response time is the check's (from its first attempt's first
contact), and a simulated answer is marked as such.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from commtest.facts import Check, RunFacts, facts_of_run
from commtest.models import TestRun
from scheduler.specs import spec_for_revision

# Which outcome describes an (organisation, channel) best when its checks differ: the best news first.
_RANK = ("acked", "acked_late", "manual", "self_reported", "voicemail", "away", "busy", "no_answer", "delivered_no_ack",
         "no_record", "blocked", "bounced", "invalid_endpoint", "aborted", "provider_failure", "template_error",
         "unknown", "cancelled")


@dataclass(frozen=True)
class SummaryRow:
    organisation_code: str
    channel: str
    checks: int  # contact points checked on this channel
    sent: int  # attempts sent
    acked: int  # checks answered
    response_ms: int | None  # the verdict's response time (first answer for answer: any)
    outcome: str  # the most telling outcome among the checks
    verdict: str  # pass | fail | pending | no_endpoint | not_tested | cancelled | aborted
    target_s: int | None
    simulated: bool = False


@dataclass
class RunSummary:
    run_id: int
    status: str
    rows: list[SummaryRow] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def simulated(self) -> bool:
        return any(r.simulated for r in self.rows)


def run_summary(session: Session, run_id: int) -> RunSummary:
    run = session.get(TestRun, run_id)
    assert run is not None
    spec = spec_for_revision(session, run.revision_id)
    facts: RunFacts = facts_of_run(session.connection(), run_id, spec.fact_rules())
    rows = []
    for v in facts.verdicts:
        checks = [c for c in facts.checks if (c.organisation_code, c.channel) == (v.organisation_code, v.channel)]
        outcomes = [c.outcome for c in checks if c.outcome]
        outcome = min(outcomes, key=lambda o: _RANK.index(o) if o in _RANK else 99) if outcomes else "-"
        rows.append(SummaryRow(
            organisation_code=v.organisation_code, channel=v.channel, checks=len(checks),
            sent=sum(c.attempts_sent for c in checks), acked=v.answered, response_ms=v.response_ms, outcome=outcome,
            verdict=v.verdict, target_s=v.target_ms // 1000 if v.target_ms else None, simulated=v.simulated,
        ))
    return RunSummary(run_id=run_id, status=run.status, rows=rows, checks=list(facts.checks))


__all__ = ["RunSummary", "SummaryRow", "run_summary"]
