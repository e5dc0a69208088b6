"""What happens after a ping ends without acknowledgement: pure functions of (state, now).

Kept free of I/O so every rule is tested with a frozen clock.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from commtest.models import Outcome
from playbooks.schema import EscalationSpec, PlaybookSpec

# A provider that failed is not hammered: at least this long before the next attempt, doubled
# for each failure in a row (10 s, 20 s, 40 s ...) up to MAX_RETRY_AFTER_FAILURE.
MIN_RETRY_AFTER_FAILURE = timedelta(seconds=10)
MAX_RETRY_AFTER_FAILURE = timedelta(minutes=5)

PERMANENT = {Outcome.bounced, Outcome.invalid_endpoint, Outcome.blocked}
TEMPORARY = {Outcome.provider_failure}
# A template that failed for this contact point fails again: nothing automatic (it is an action point).
UNANSWERED = {Outcome.delivered_no_ack, Outcome.voicemail, Outcome.away, Outcome.busy, Outcome.no_answer,
              Outcome.no_record}


@dataclass(frozen=True)
class Silence:
    """Facts about one ping that ended unacknowledged."""

    step_id: str
    step_attempt: int
    outcome: Outcome
    has_next_endpoint: bool
    failures_in_row: int = 1  # attempts of this step that failed on our side in a row, this one included


@dataclass(frozen=True)
class Moves:
    """What the engine should do next for this contact point and step."""

    retry_at: datetime | None = None
    next_endpoint: bool = False  # the retry goes to the next endpoint of the same kind
    escalate: EscalationSpec | None = None

    @property
    def nothing(self) -> bool:
        return self.retry_at is None and self.escalate is None


def next_moves(spec: PlaybookSpec, silence: Silence, now: datetime) -> Moves:
    """Retry, try the next endpoint, or escalate, following the playbook.

    * unknown / cancelled: nothing automatic (a coordinator decides; never resend).
    * permanent failure (bounce, invalid endpoint): the next endpoint of the same kind at
      once if there is one (the endpoint failed, not the person), else escalate.
    * temporary provider failure (429, 5xx, a timeout before the request went out): retry
      after ``retry_interval``, but never sooner than the backoff (10 s, doubled for each
      failure in a row, at most 5 min), while retries remain; else escalate.
    * unanswered (no acknowledgement, voicemail, out of office): retry after
      ``retry_interval`` while retries remain, else escalate.
    """
    step = spec.step(silence.step_id)
    escalation = spec.escalation_of(step)
    if silence.outcome in PERMANENT:
        if silence.has_next_endpoint:
            return Moves(retry_at=now, next_endpoint=True)
        return Moves(escalate=escalation)
    retries_left = silence.step_attempt <= step.retries
    if silence.outcome in TEMPORARY:
        if retries_left:
            return Moves(retry_at=now + max(step.retry_interval, backoff(silence.failures_in_row)))
        return Moves(escalate=escalation)
    if silence.outcome in UNANSWERED:
        if retries_left:
            return Moves(retry_at=now + step.retry_interval)
        return Moves(escalate=escalation)
    return Moves()


def backoff(failures_in_row: int) -> timedelta:
    """How long a provider that failed that many times in a row is left alone."""
    doubled = MIN_RETRY_AFTER_FAILURE * (2 ** max(0, min(failures_in_row, 16) - 1))
    return min(doubled, MAX_RETRY_AFTER_FAILURE)


def ack_deadline(spec: PlaybookSpec, step_id: str, sent_at: datetime) -> datetime:
    return sent_at + spec.step(step_id).ack_deadline


def is_late(acked_at: datetime, deadline_at: datetime | None) -> bool:
    return deadline_at is not None and acked_at > deadline_at
