"""Escalation rules as pure functions of (state, now), with a frozen instant."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from ruamel.yaml import YAML

from commtest.clock import UTC
from commtest.models import Outcome
from playbooks.schema import EscalationSpec, PlaybookSpec
from scheduler.escalation import MIN_RETRY_AFTER_FAILURE, Moves, Silence, ack_deadline, is_late, next_moves

NOW = datetime(2026, 4, 14, 8, 0, tzinfo=UTC)

TEMPLATES = """
templates:
  ping:
    en:
      subject: "Test {{ run.id }}"
      body: "Confirm {{ ack_url }}"
"""


def playbook(steps: str, *, mode: str = "parallel") -> PlaybookSpec:
    text = f"""
id: esc
title: Escalation
owner: XA-COORD
mode: {mode}
participants:
  - organisation: XA-ONE
    fields: [crisis-desk]
steps:
{steps}
{TEMPLATES}
"""
    return PlaybookSpec.model_validate(YAML(typ="safe").load(text))


# email: one retry after 5 minutes, then the voice step; voice: no retry, no escalation.
PARALLEL = playbook("""
  - {id: email, channel: email, template: ping, ack_deadline: 15m, retries: 1, retry_interval: 5m, escalate: {step: voice}}
  - {id: voice, channel: voice, template: ping, ack_deadline: 5m}
  - {id: fast, channel: sms, template: ping, ack_deadline: 5m, retries: 2, retry_interval: 2s}
""")

SEQUENCE = playbook("""
  - {id: email, channel: email, template: ping, ack_deadline: 15m, retries: 1, retry_interval: 5m}
  - {id: voice, channel: voice, template: ping, ack_deadline: 5m}
  - {id: sms, channel: sms, template: ping, ack_deadline: 10m, escalate: {field: emergency-planning}}
  - {id: video, channel: video, template: ping, ack_deadline: 10m}
""", mode="sequence")

UNANSWERED = [Outcome.delivered_no_ack, Outcome.voicemail, Outcome.away]
PERMANENT = [Outcome.bounced, Outcome.invalid_endpoint]


def silence(step: str, attempt: int, outcome: Outcome, next_endpoint: bool = False) -> Silence:
    return Silence(step_id=step, step_attempt=attempt, outcome=outcome, has_next_endpoint=next_endpoint)


@pytest.mark.parametrize("outcome", UNANSWERED)
@pytest.mark.parametrize("next_endpoint", [False, True])
def test_an_unanswered_ping_with_retries_left_is_retried_on_the_same_endpoint_after_the_interval(
    outcome: Outcome, next_endpoint: bool
) -> None:
    moves = next_moves(PARALLEL, silence("email", 1, outcome, next_endpoint), NOW)
    assert moves == Moves(retry_at=NOW + timedelta(minutes=5), next_endpoint=False, escalate=None)


@pytest.mark.parametrize("outcome", UNANSWERED)
@pytest.mark.parametrize("next_endpoint", [False, True])
def test_an_unanswered_last_attempt_escalates_to_the_steps_escalation(outcome: Outcome, next_endpoint: bool) -> None:
    moves = next_moves(PARALLEL, silence("email", 2, outcome, next_endpoint), NOW)
    assert moves == Moves(escalate=EscalationSpec(step="voice"))


@pytest.mark.parametrize("outcome", UNANSWERED + [Outcome.provider_failure])
def test_a_last_attempt_without_any_escalation_ends_with_nothing_to_do(outcome: Outcome) -> None:
    moves = next_moves(PARALLEL, silence("voice", 1, outcome), NOW)
    assert moves.nothing
    assert moves == Moves()


def test_a_provider_failure_with_retries_left_is_retried_after_the_interval() -> None:
    moves = next_moves(PARALLEL, silence("email", 1, Outcome.provider_failure, next_endpoint=True), NOW)
    # Our side failed, not the endpoint: same endpoint again, not the next one.
    assert moves == Moves(retry_at=NOW + timedelta(minutes=5), next_endpoint=False)


def test_a_provider_failure_is_not_retried_sooner_than_the_minimum_even_with_a_short_interval() -> None:
    moves = next_moves(PARALLEL, silence("fast", 1, Outcome.provider_failure), NOW)
    assert MIN_RETRY_AFTER_FAILURE == timedelta(seconds=10)
    assert moves.retry_at == NOW + MIN_RETRY_AFTER_FAILURE
    # ... whereas silence keeps the playbook's own short interval
    assert next_moves(PARALLEL, silence("fast", 1, Outcome.delivered_no_ack), NOW).retry_at == NOW + timedelta(seconds=2)


def test_a_provider_failure_on_the_last_attempt_escalates() -> None:
    moves = next_moves(PARALLEL, silence("email", 2, Outcome.provider_failure), NOW)
    assert moves == Moves(escalate=EscalationSpec(step="voice"))


@pytest.mark.parametrize("outcome", PERMANENT)
@pytest.mark.parametrize("attempt", [1, 2])
def test_a_permanent_failure_goes_to_the_next_endpoint_at_once_whatever_the_retries_left(outcome: Outcome, attempt: int) -> None:
    moves = next_moves(PARALLEL, silence("email", attempt, outcome, next_endpoint=True), NOW)
    assert moves == Moves(retry_at=NOW, next_endpoint=True, escalate=None)


@pytest.mark.parametrize("outcome", PERMANENT)
@pytest.mark.parametrize("attempt", [1, 2])
def test_a_permanent_failure_without_another_endpoint_escalates_instead_of_retrying(outcome: Outcome, attempt: int) -> None:
    # Retrying an address that bounced cannot help, even when retries are left.
    moves = next_moves(PARALLEL, silence("email", attempt, outcome, next_endpoint=False), NOW)
    assert moves == Moves(escalate=EscalationSpec(step="voice"))


@pytest.mark.parametrize("outcome", PERMANENT)
def test_a_permanent_failure_without_another_endpoint_nor_escalation_ends_with_nothing(outcome: Outcome) -> None:
    assert next_moves(PARALLEL, silence("voice", 1, outcome), NOW).nothing


@pytest.mark.parametrize("outcome", [Outcome.unknown, Outcome.cancelled])
@pytest.mark.parametrize("attempt", [1, 2])
@pytest.mark.parametrize("next_endpoint", [False, True])
@pytest.mark.parametrize("spec", [PARALLEL, SEQUENCE], ids=["parallel", "sequence"])
def test_an_unknown_or_cancelled_ping_is_never_resent_nor_escalated_automatically(
    outcome: Outcome, attempt: int, next_endpoint: bool, spec: PlaybookSpec
) -> None:
    moves = next_moves(spec, silence("email", attempt, outcome, next_endpoint), NOW)
    assert moves == Moves()
    assert moves.nothing


@pytest.mark.parametrize("outcome", [Outcome.acked, Outcome.acked_late])
def test_an_acknowledged_ping_needs_nothing_more(outcome: Outcome) -> None:
    assert next_moves(PARALLEL, silence("email", 1, outcome), NOW).nothing


@pytest.mark.parametrize("outcome", UNANSWERED + [Outcome.provider_failure] + PERMANENT)
def test_in_sequence_mode_a_step_without_escalate_escalates_to_the_next_step(outcome: Outcome) -> None:
    moves = next_moves(SEQUENCE, silence("voice", 1, outcome), NOW)
    assert moves == Moves(escalate=EscalationSpec(step="sms"))


def test_in_sequence_mode_retries_come_before_the_implied_escalation() -> None:
    assert next_moves(SEQUENCE, silence("email", 1, Outcome.delivered_no_ack), NOW) == Moves(retry_at=NOW + timedelta(minutes=5))
    assert next_moves(SEQUENCE, silence("email", 2, Outcome.delivered_no_ack), NOW) == Moves(escalate=EscalationSpec(step="voice"))


def test_in_sequence_mode_an_explicit_escalate_wins_over_the_next_step() -> None:
    moves = next_moves(SEQUENCE, silence("sms", 1, Outcome.voicemail), NOW)
    assert moves == Moves(escalate=EscalationSpec(field="emergency-planning"))


def test_in_sequence_mode_the_last_step_has_nowhere_to_escalate() -> None:
    assert next_moves(SEQUENCE, silence("video", 1, Outcome.delivered_no_ack), NOW).nothing


def test_a_parallel_playbook_starts_every_step_that_is_nobodys_escalation_target() -> None:
    assert [s.id for s in PARALLEL.initial_steps()] == ["email", "fast"]


def test_a_sequence_playbook_starts_only_its_first_step() -> None:
    plain = playbook("""
  - {id: email, channel: email, template: ping, ack_deadline: 15m}
  - {id: voice, channel: voice, template: ping, ack_deadline: 5m, retries: 1}
  - {id: sms, channel: sms, template: ping, ack_deadline: 10m}
""", mode="sequence")
    assert [s.id for s in plain.initial_steps()] == ["email"]


def test_the_decision_depends_only_on_its_inputs() -> None:
    later = NOW + timedelta(hours=3)
    s = silence("email", 1, Outcome.away)
    assert next_moves(PARALLEL, s, NOW) == next_moves(PARALLEL, s, NOW)
    assert next_moves(PARALLEL, s, later).retry_at == later + timedelta(minutes=5)


def test_the_ack_deadline_counts_from_sending_and_late_means_strictly_after_it() -> None:
    deadline = ack_deadline(PARALLEL, "voice", NOW)
    assert deadline == NOW + timedelta(minutes=5)
    assert not is_late(deadline, deadline)
    assert is_late(deadline + timedelta(seconds=1), deadline)
    assert not is_late(deadline + timedelta(days=1), None)


def test_failures_on_our_side_in_a_row_are_retried_after_a_growing_backoff() -> None:
    """A 429, then a 503, then another 503: the provider is left alone longer each time."""
    gaps = [next_moves(PARALLEL, Silence("fast", 1, Outcome.provider_failure, False, n), NOW).retry_at - NOW
            for n in (1, 2, 3)]
    assert gaps == [timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=40)]
    many = next_moves(PARALLEL, Silence("fast", 1, Outcome.provider_failure, False, 12), NOW)
    assert many.retry_at == NOW + timedelta(minutes=5)  # never more than five minutes
    # The playbook's own longer interval still wins over a short backoff.
    assert next_moves(PARALLEL, Silence("email", 1, Outcome.provider_failure, False, 2), NOW).retry_at == \
        NOW + timedelta(minutes=5)
