from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.base import OutgoingPing, SendResult
from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxRecord, SandboxScript
from commtest.clock import FrozenClock
from commtest.db import session_scope
from commtest.errors import ChannelError
from commtest.models import Endpoint, Event, Ping, PingState, RunStatus, TestRun
from commtest.settings import load_settings
from scheduler.engine import RunEngine
from scheduler.summary import run_summary
from tests.scheduler.seed import seed_directory, store_playbook

KINDS = ("email", "voice", "sms", "video", "cap")


def make_engine(engine: Engine, clock: FrozenClock, rules: list[Rule] | None = None,
                default: Rule | None = None, overrides: dict | None = None,
                real: bool = False) -> tuple[RunEngine, SandboxRecord]:
    """An engine whose providers follow a script; ``real=True`` makes them stand in for real
    providers (their answers are evidence), else they are the sandbox (simulated)."""
    record = SandboxRecord()
    script = SandboxScript(default=default or Rule("never"), rules=rules or [])
    chans = {k: SandboxChannel(k, clock, script, record, simulated=not real) for k in KINDS}
    chans.update(overrides or {})
    settings = load_settings(database_url=str(engine.url), dispatch_workers=2)
    return RunEngine(engine, settings, clock, ChannelSet(settings, clock, chans), actor="test"), record


@pytest.fixture
def world(engine: Engine, clock: FrozenClock) -> Iterator[Engine]:
    seed_directory(engine)
    store_playbook(engine)
    yield engine


def pings(engine: Engine, run_id: int) -> list[Ping]:
    with session_scope(engine) as s:
        return list(s.exec(select(Ping).where(Ping.run_id == run_id).order_by(Ping.id)).all())


def run_until(eng: RunEngine, clock: FrozenClock, run_id: int, *, step_s: int = 30, limit_s: int = 4 * 3600) -> None:
    for _ in range(limit_s // step_s):
        eng.tick()
        if eng.is_settled(run_id):
            return
        clock.advance(step_s)
    raise AssertionError("run did not finish")


def test_starting_a_run_plans_one_ping_per_contact_point_and_initial_step(world: Engine, clock: FrozenClock) -> None:
    eng, _ = make_engine(world, clock)
    run_id = eng.create_run("test-playbook", started_by="tester")
    assert eng.start_run(run_id) == 4  # 2 centres x (email, voice); sms only by escalation
    got = {(p.organisation_code, p.channel, p.attempt, p.state) for p in pings(world, run_id)}
    assert got == {(o, c, 1, "pending") for o in ("XA-ONE", "XB-TWO") for c in ("email", "voice")}


def test_a_ping_is_committed_as_dispatching_before_its_provider_is_called(world: Engine, clock: FrozenClock) -> None:
    seen: list[str] = []

    class Spy:
        kind, provider = "email", "spy"

        def send(self, ping: OutgoingPing) -> SendResult:
            # Another connection sees the committed state: that is what survives a crash.
            with world.connect() as conn:
                seen.append(conn.execute(sa.text("SELECT state FROM ping WHERE id = :i"), {"i": ping.ping_id}).scalar_one())
            return SendResult(provider_ref=f"spy-{ping.ping_id}")

        def poll_reports(self, now):  # type: ignore[no-untyped-def]
            return []

        def close(self) -> None:
            pass

    eng, _ = make_engine(world, clock, overrides={"email": Spy()})
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    assert seen == ["dispatching", "dispatching"]
    assert {p.state for p in pings(world, run_id) if p.channel == "email"} == {"sent"}


def test_an_acknowledgement_in_time_passes_and_proves_the_endpoint(world: Engine, clock: FrozenClock) -> None:
    eng, record = make_engine(world, clock, default=Rule("ack", timedelta(seconds=90)), real=True)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    run_until(eng, clock, run_id)
    ps = pings(world, run_id)
    assert {p.outcome for p in ps} == {"acked"}
    assert len(record.sent) == 4
    email = next(p for p in ps if p.channel == "email")
    assert email.ack_method == "link"
    assert email.acked_at - email.sent_at == timedelta(seconds=90)
    with session_scope(world) as s:
        ep = s.get(Endpoint, email.endpoint_id)
        assert ep.verified_at == email.acked_at and ep.verified_run_id == run_id
    summary = run_summary_of(world, run_id)
    assert {(r.organisation_code, r.channel): r.verdict for r in summary.rows} == {
        ("XA-ONE", "email"): "pass", ("XA-ONE", "voice"): "pass", ("XB-TWO", "email"): "pass", ("XB-TWO", "voice"): "pass"}


def run_summary_of(engine: Engine, run_id: int):  # type: ignore[no-untyped-def]
    with session_scope(engine) as s:
        return run_summary(s, run_id)


def test_silence_is_retried_after_the_interval_then_escalates_to_the_next_step(world: Engine, clock: FrozenClock) -> None:
    eng, record = make_engine(world, clock)  # nobody ever answers
    start = clock.now()
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    run_until(eng, clock, run_id, step_s=15)
    one = [p for p in pings(world, run_id) if p.organisation_code == "XA-ONE"]
    email = [p for p in one if p.channel == "email"]
    assert [(p.attempt, p.outcome) for p in email] == [(1, "delivered_no_ack"), (2, "delivered_no_ack")]
    # attempt 2 was due 5 minutes after attempt 1's 15-minute deadline
    assert email[1].due_at - email[0].deadline_at == timedelta(minutes=5)
    sms = [p for p in one if p.channel == "sms"]
    assert len(sms) == 1 and sms[0].escalated_from_id == next(p.id for p in one if p.channel == "voice")
    assert sms[0].due_at - start == timedelta(minutes=5)  # right at the voice deadline (tick granularity 15 s)
    assert len(record.sent) == 2 * (2 + 1 + 1)
    assert {r.verdict for r in run_summary_of(world, run_id).rows} == {"fail"}


def test_a_provider_failure_is_recorded_and_retried_while_other_pings_go_on(world: Engine, clock: FrozenClock) -> None:
    eng, record = make_engine(world, clock, rules=[Rule("fail", match="desk@xa-one.example", attempt=1)],
                              default=Rule("ack", timedelta(seconds=60)))
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    run_until(eng, clock, run_id, step_s=5)
    email = [p for p in pings(world, run_id) if p.channel == "email" and p.organisation_code == "XA-ONE"]
    assert [(p.attempt, p.outcome) for p in email] == [(1, "provider_failure"), (2, "acked")]
    assert "unavailable" in (email[0].error or "")
    assert {p.outcome for p in pings(world, run_id) if p.organisation_code == "XB-TWO"} == {"acked"}


def test_a_permanent_failure_goes_to_the_next_endpoint_and_marks_the_first_suspect(engine: Engine, clock: FrozenClock) -> None:
    seed_directory(engine, second_email=True)
    store_playbook(engine)
    eng, _ = make_engine(engine, clock, rules=[Rule("invalid", match="desk@*")], default=Rule("ack", timedelta(seconds=30)),
                         real=True)  # a real provider's refusal flags the endpoint (a simulated one never does)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    run_until(eng, clock, run_id, step_s=5)
    email = [p for p in pings(engine, run_id) if p.channel == "email" and p.organisation_code == "XA-ONE"]
    assert [(p.address, p.outcome) for p in email] == [("desk@xa-one.example", "invalid_endpoint"), ("backup@xa-one.example", "acked")]
    with session_scope(engine) as s:
        assert s.get(Endpoint, email[0].endpoint_id).status == "suspect"


def test_a_late_acknowledgement_is_recorded_as_late_and_cancels_the_pending_retry(world: Engine, clock: FrozenClock) -> None:
    eng, _ = make_engine(world, clock, rules=[Rule("ack", timedelta(minutes=17), channel="email", attempt=1)])
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    for _ in range(int(16 * 60 / 15)):
        eng.tick()
        clock.advance(15)
    email = [p for p in pings(world, run_id) if p.channel == "email" and p.organisation_code == "XA-ONE"]
    assert [p.state for p in email] == ["expired", "pending"]  # retry due 5 min after the deadline
    clock.advance(60)
    eng.tick()
    email = [p for p in pings(world, run_id) if p.channel == "email" and p.organisation_code == "XA-ONE"]
    assert [(p.state, p.outcome) for p in email] == [("acked", "acked_late"), ("cancelled", "cancelled")]


def test_a_ping_left_dispatching_by_a_crash_becomes_unknown_and_is_never_resent(world: Engine, clock: FrozenClock) -> None:
    eng, record = make_engine(world, clock)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    with session_scope(world) as s:  # what a crash between the two transactions leaves behind
        p = s.exec(select(Ping).where(Ping.run_id == run_id)).first()
        p.state = PingState.dispatching.value
        s.add(p)
        crashed = p.id
    eng2, record2 = make_engine(world, clock)
    assert eng2.recover() == 1
    run_until(eng2, clock, run_id, step_s=30)
    got = next(p for p in pings(world, run_id) if p.id == crashed)
    assert (got.state, got.outcome) == ("unknown", "unknown")
    assert crashed not in {e["ping_id"] for e in record2.sent}
    # and nothing automatic followed it
    assert not [p for p in pings(world, run_id) if p.escalated_from_id == crashed]


def test_aborting_a_run_cancels_what_was_not_sent(world: Engine, clock: FrozenClock) -> None:
    eng, record = make_engine(world, clock)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    assert eng.abort_run(run_id, by="coordinator", reason="exercise called off") == 4
    eng.tick()
    assert record.sent == []
    with session_scope(world) as s:
        assert s.get(TestRun, run_id).status == RunStatus.aborted.value


def test_a_run_missed_by_more_than_the_grace_is_recorded_missed_and_one_within_it_runs(world: Engine, clock: FrozenClock) -> None:
    eng, _ = make_engine(world, clock)
    late = eng.create_run("test-playbook", trigger="schedule", fire_at=clock.now() - timedelta(minutes=16), dedupe_key="s@1")
    ok = eng.create_run("test-playbook", trigger="schedule", fire_at=clock.now() - timedelta(minutes=14), dedupe_key="s@2")
    assert eng.start_due_runs(clock.now()) == (1, 1)
    with session_scope(world) as s:
        assert s.get(TestRun, late).status == "missed"
        assert s.get(TestRun, ok).status == "running"


def test_a_run_is_unique_on_its_schedule_and_fire_time(world: Engine, clock: FrozenClock) -> None:
    eng, _ = make_engine(world, clock)
    a = eng.create_run("test-playbook", trigger="schedule", fire_at=clock.now(), dedupe_key="7@2026-04-14T08:00")
    b = eng.create_run("test-playbook", trigger="schedule", fire_at=clock.now(), dedupe_key="7@2026-04-14T08:00")
    assert a == b
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(world) as s:
            r = s.get(TestRun, a)
            s.add(TestRun(playbook_id=r.playbook_id, revision_id=r.revision_id, dedupe_key=r.dedupe_key, fire_at=r.fire_at))


def test_the_database_refuses_a_second_ping_for_the_same_run_contact_point_channel_and_attempt(world: Engine, clock: FrozenClock) -> None:
    eng, _ = make_engine(world, clock)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    first = pings(world, run_id)[0]
    with pytest.raises(sa.exc.IntegrityError):
        with session_scope(world) as s:
            s.add(Ping(run_id=run_id, contact_point_id=first.contact_point_id, organisation_code=first.organisation_code,
                       channel=first.channel, attempt=first.attempt, due_at=clock.now()))


def test_the_state_of_every_ping_is_derivable_from_the_event_log(world: Engine, clock: FrozenClock) -> None:
    eng, _ = make_engine(world, clock, rules=[Rule("voicemail", channel="voice", after=timedelta(seconds=20))],
                         default=Rule("ack", timedelta(minutes=3)))
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    run_until(eng, clock, run_id, step_s=10)
    with session_scope(world) as s:
        evs = s.exec(select(Event).where(Event.run_id == run_id).order_by(Event.id)).all()
    last_outcome: dict[int, str] = {}
    sent: set[int] = set()
    for e in evs:
        if e.kind == "ping.settled":
            last_outcome[e.ping_id] = e.outcome
        if e.kind == "ping.sent":
            sent.add(e.ping_id)
    ps = pings(world, run_id)
    assert last_outcome == {p.id: p.outcome for p in ps}
    assert sent == {p.id for p in ps if p.sent_at is not None}
    voice = [p for p in ps if p.channel == "voice"]
    assert {p.outcome for p in voice} == {"voicemail"}
    assert {p.outcome for p in ps if p.channel == "sms"} == {"acked"}  # escalated after the voicemail
    kinds = [e.kind for e in evs]
    assert kinds[0] == "run.planned" and kinds[1] == "run.started" and kinds[-1] == "run.completed"


def test_an_acknowledgement_that_arrives_while_the_provider_call_returns_is_kept(world: Engine, clock: FrozenClock) -> None:
    from scheduler import records

    class QuickOfficer:
        """The officer clicks the link before the provider has even answered our API call."""

        kind, provider = "email", "quick"

        def send(self, ping: OutgoingPing) -> SendResult:
            with session_scope(world, durable=True) as s:
                records.acknowledge(s, s.get(Ping, ping.ping_id), clock.now(), method="link", actor="web")
            return SendResult(provider_ref=f"quick-{ping.ping_id}")

        def poll_reports(self, now):  # type: ignore[no-untyped-def]
            return []

        def close(self) -> None:
            pass

    eng, _ = make_engine(world, clock, overrides={"email": QuickOfficer()})
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    clock.advance(minutes=30)
    eng.tick()
    email = [p for p in pings(world, run_id) if p.channel == "email"]
    assert [(p.state, p.outcome, p.attempt) for p in email] == [("acked", "acked", 1)] * 2
    assert all(p.sent_at is not None and p.provider_ref for p in email)


def test_an_attempt_sent_while_its_run_was_being_aborted_ends_aborted_with_its_send_recorded(
        world: Engine, clock: FrozenClock) -> None:
    runs: list[RunEngine] = []

    class AbortingProvider:
        """The coordinator aborts the run while our API call to the provider is in flight."""

        kind, provider = "email", "aborting"

        def send(self, ping: OutgoingPing) -> SendResult:
            with session_scope(world) as s:
                status = s.get(TestRun, ping.run_id).status
            if status == RunStatus.running.value:
                runs[0].abort_run(ping.run_id, by="coordinator", reason="called off")
            return SendResult(provider_ref=f"ab-{ping.ping_id}")

        def poll_reports(self, now):  # type: ignore[no-untyped-def]
            return []

        def close(self) -> None:
            pass

    eng, _ = make_engine(world, clock, overrides={"email": AbortingProvider()})
    runs.append(eng)
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    eng.tick()
    taken = [p for p in pings(world, run_id) if p.provider_ref and p.provider_ref.startswith("ab-")]
    assert taken  # the provider took at least the attempt whose call aborted the run
    # Its send is on record, and the abort settles it: never left "sent" and waiting for an answer.
    assert [(p.state, p.outcome) for p in taken] == [("expired", "aborted")] * len(taken)
    assert all(p.sent_at is not None for p in taken)
    with session_scope(world) as s:
        kinds = [e.kind for e in s.exec(select(Event).where(Event.ping_id == taken[0].id).order_by(Event.id)).all()]
    assert "ping.sent" in kinds and kinds[-1] == "ping.settled"
    assert {p.state for p in pings(world, run_id) if not p.provider_ref} <= {"cancelled"}


def test_a_late_answer_stops_the_remaining_attempts_and_the_escalation(engine: Engine, clock: FrozenClock) -> None:
    from tests.scheduler.seed import PLAYBOOK

    seed_directory(engine)
    store_playbook(engine, PLAYBOOK.replace("    ack_deadline: 5m\n    escalate: {step: sms}",
                                            "    ack_deadline: 5m\n    retries: 1\n    retry_interval: 1m\n    escalate: {step: sms}"))
    eng, _ = make_engine(engine, clock)  # nobody answers by themselves
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    for _ in range(int(7 * 60 / 15)):  # attempt 1 expires at 5 min, attempt 2 goes out at 6 min
        eng.tick()
        clock.advance(15)
    voice = [p for p in pings(engine, run_id) if p.channel == "voice" and p.organisation_code == "XA-ONE"]
    assert [(p.attempt, p.state) for p in voice] == [(1, "expired"), (2, "delivered")]  # ringing
    from channels.base import ChannelReport

    eng.apply_reports([ChannelReport("acked", clock.now(), ping_id=voice[0].id, method="keypress")])  # late, on attempt 1
    run_until(eng, clock, run_id, step_s=15)
    one = [p for p in pings(engine, run_id) if p.organisation_code == "XA-ONE"]
    assert [(p.attempt, p.outcome) for p in one if p.channel == "voice"] == [(1, "acked_late"), (2, "delivered_no_ack")]
    assert [p for p in one if p.channel == "sms"] == []  # no escalation: they had answered


def test_a_channel_whose_every_attempt_failed_on_our_side_is_not_tested_rather_than_failed(world: Engine, clock: FrozenClock) -> None:
    from reports.test_report import build_test_report

    eng, _ = make_engine(world, clock, rules=[Rule("fail", match="desk@xa-one.example")],
                         default=Rule("ack", timedelta(seconds=30)))
    run_id = eng.create_run("test-playbook")
    eng.start_run(run_id)
    run_until(eng, clock, run_id, step_s=15)
    email = [p for p in pings(world, run_id) if p.channel == "email" and p.organisation_code == "XA-ONE"]
    assert {p.outcome for p in email} == {"provider_failure"} and len(email) == 2
    verdicts = {(r.organisation_code, r.channel): r.verdict for r in run_summary_of(world, run_id).rows}
    assert verdicts[("XA-ONE", "email")] == "not_tested"
    assert verdicts[("XB-TWO", "email")] == "pass"
    report = {(v.organisation, v.channel): v.verdict for v in build_test_report(world, run_id).matrix}
    assert report[("XA-ONE", "email")] == "not_tested" and report[("XB-TWO", "email")] == "pass"
