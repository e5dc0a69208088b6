"""Races that must end in one outcome and one event: an acknowledgement landing on its deadline,
two replicas recording the same acknowledgement, a read held open while writers write.

Each test runs on SQLite and, when configured, on PostgreSQL (where replicas really interleave:
row locks, FOR UPDATE, READ COMMITTED snapshots per statement).
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import select

from channels.registry import ChannelSet
from channels.sandbox import Rule, SandboxChannel, SandboxRecord, SandboxScript
from commtest.clock import FrozenClock
from commtest.db import make_engine, read_session, session_scope
from commtest.models import Event, Ping
from commtest.settings import load_settings
from scheduler.ack_group import acknowledge_token
from scheduler.engine import RunEngine
from tests.scheduler.seed import seed_directory, store_playbook

MANY = """
id: many-desks
title: Many desks
owner: XA-COORD
participants:
  - organisation: XA-ONE
    fields: [crisis-desk]
steps:
  - id: email
    channel: email
    template: ping
    ack_deadline: 15m
    retries: 1
    retry_interval: 1m
templates:
  ping:
    en: {subject: "Test", body: "Confirm: {{ ack_url }}"}
"""


class Capture:
    """A real-looking e-mail provider (not simulated) that keeps each raw token."""

    kind, provider, simulated = "email", "capture", False

    def __init__(self) -> None:
        self.tokens: dict[int, str] = {}
        self.calls: list[int] = []
        self._lock = threading.Lock()

    def send(self, ping):  # type: ignore[no-untyped-def]
        from channels.base import SendResult

        with self._lock:
            self.tokens[ping.ping_id] = ping.token
            self.calls.append(ping.ping_id)
        return SendResult(provider_ref=f"<cap-{ping.ping_id}@x.example>")

    def poll_reports(self, now):  # type: ignore[no-untyped-def]
        return []

    def close(self) -> None:
        pass


def _desks(engine: Engine, n: int) -> None:
    """``n`` more crisis-desk contact points of XA-ONE, one e-mail endpoint each."""
    from commtest.models import ContactPoint, Endpoint, FieldOfWork, Organisation

    with session_scope(engine) as s:
        org = s.exec(select(Organisation).where(Organisation.code == "XA-ONE")).one()
        fld = s.exec(select(FieldOfWork).where(FieldOfWork.code == "crisis-desk")).one()
        for i in range(n):
            cp = ContactPoint(code=f"XA-ONE/crisis-desk/{i}", organisation_id=org.id, field_id=fld.id, name=f"Desk {i}",
                              languages=["en"])
            s.add(cp)
            s.flush()
            s.add(Endpoint(contact_point_id=cp.id, kind="email", address=f"desk{i}@xa-one.example"))


def _engine_for(engine: Engine, clock: FrozenClock, capture: Capture) -> RunEngine:
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False), dispatch_workers=4)
    quiet = SandboxScript(default=Rule("never"))
    chans = ChannelSet(settings, clock, {"email": capture, "voice": SandboxChannel("voice", clock, quiet, SandboxRecord()),
                                        "sms": SandboxChannel("sms", clock, quiet, SandboxRecord())})  # type: ignore[dict-item]
    return RunEngine(engine, settings, clock, chans, actor="test")


@pytest.fixture
def sent(engine: Engine, clock: FrozenClock):  # type: ignore[no-untyped-def]
    seed_directory(engine)
    store_playbook(engine, MANY, "many-desks")
    _desks(engine, 30)
    capture = Capture()
    eng = _engine_for(engine, clock, capture)
    run_id = eng.create_run("many-desks")
    eng.start_run(run_id)
    eng.dispatch_due()
    yield eng, run_id, capture
    eng.close()


def _ack(engine: Engine, clock: FrozenClock, token: str) -> str:
    settings = load_settings(database_url=engine.url.render_as_string(hide_password=False))
    return acknowledge_token(engine, clock, settings, token, method="link", by=None, user_agent=None, source=None).status


def test_acknowledgements_landing_on_their_deadline_are_never_overwritten_and_never_pinged_again(
        sent, engine: Engine, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    eng, run_id, capture = sent
    clock.advance(15 * 60)  # now == every deadline: answers and expiry race for every attempt
    other = make_engine(engine.url.render_as_string(hide_password=False))  # a second replica's pool
    answers: dict[int, str] = {}
    barrier = threading.Barrier(3)

    def answer(ids: list[int]) -> None:
        barrier.wait()
        for ping_id in ids:
            answers[ping_id] = _ack(other, clock, capture.tokens[ping_id])

    ids = sorted(capture.tokens)
    threads = [threading.Thread(target=answer, args=(ids[0::2],)), threading.Thread(target=answer, args=(ids[1::2],))]
    for t in threads:
        t.start()
    barrier.wait()
    eng.expire_due(clock.now())
    for t in threads:
        t.join(60)
    other.dispose()
    with read_session(engine) as s:
        pings = {p.id: p for p in s.exec(select(Ping).where(Ping.run_id == run_id)).all()}
        events = s.exec(select(Event).where(Event.run_id == run_id)).all()
    acked_ok = {pid for pid, status in answers.items() if status == "acked"}
    assert acked_ok, "some answers must have won the race"
    for pid in ids:
        settled = [e.outcome for e in events if e.ping_id == pid and e.kind == "ping.settled"]
        acked = [e for e in events if e.ping_id == pid and e.kind == "ping.acked"]
        follow_ups = [p for p in pings.values() if p.escalated_from_id == pid]
        if pid in acked_ok:
            # A 2xx answer is final and recorded once. If the deadline's decision committed
            # first, the answer followed it (a late answer: both are facts), and the retry that
            # decision planned was cancelled before it was ever sent.
            assert pings[pid].state == "acked" and len(acked) == 1, pid
            assert settled in (["acked"], ["delivered_no_ack", "acked"]), (pid, settled)
            assert all(p.state == "cancelled" for p in follow_ups), pid
        else:
            # The deadline won: one outcome, one event; the answer was told it came too late.
            assert answers[pid] in ("expired", "already") and settled == ["delivered_no_ack"] and not acked, pid
    # Nobody was pinged twice: every provider call was a different attempt, none for an answered one.
    assert len(capture.calls) == len(set(capture.calls)) == len(ids)


def test_two_replicas_recording_one_acknowledgement_record_it_once(sent, engine: Engine, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    _, run_id, capture = sent
    clock.advance(60)
    replicas = [make_engine(engine.url.render_as_string(hide_password=False)) for _ in range(2)]
    token = capture.tokens[min(capture.tokens)]
    results: list[str] = []
    barrier = threading.Barrier(2)

    def post(replica: Engine) -> None:
        barrier.wait()
        results.append(_ack(replica, clock, token))

    threads = [threading.Thread(target=post, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for r in replicas:
        r.dispose()
    assert sorted(results) == ["acked", "already"]
    with read_session(engine) as s:
        acked = s.exec(select(Event).where(Event.ping_id == min(capture.tokens), Event.kind == "ping.acked")).all()
    assert len(acked) == 1


def test_a_template_that_fails_for_one_contact_point_fails_that_attempt_only(engine: Engine, clock: FrozenClock) -> None:
    seed_directory(engine)
    store_playbook(engine, MANY.replace('body: "Confirm: {{ ack_url }}"',
                                        'body: "{% if contact.name == \'Desk 3\' %}{{ contact.nickname.upper() }}'
                                        '{% endif %}Confirm: {{ ack_url }}"'), "many-desks")
    _desks(engine, 6)
    capture = Capture()
    eng = _engine_for(engine, clock, capture)
    run_id = eng.create_run("many-desks")
    eng.start_run(run_id)
    for _ in range(3):  # the failing attempt never blocks the next ticks either
        eng.tick()
    eng.close()
    with read_session(engine) as s:
        pings = s.exec(select(Ping).where(Ping.run_id == run_id)).all()
    failed = [p for p in pings if p.outcome == "template_error"]
    assert len(failed) == 1 and "nickname" in (failed[0].error or "")
    assert len(capture.calls) == len(pings) - 1 and {p.state for p in pings if p not in failed} == {"sent"}


def test_a_long_read_never_keeps_an_acknowledgement_waiting(sent, engine: Engine, clock: FrozenClock) -> None:  # type: ignore[no-untyped-def]
    _, run_id, capture = sent
    token = capture.tokens[min(capture.tokens)]
    with read_session(engine) as s:  # a report computing for a minute holds this open
        s.exec(select(Ping).where(Ping.run_id == run_id)).all()
        status: list[str] = []
        t = threading.Thread(target=lambda: status.append(_ack(engine, clock, token)))
        t.start()
        t.join(10)
        assert status == ["acked"], "the acknowledgement waited for the reader"
        assert s.exec(sa.select(sa.func.count()).select_from(Ping)).one()  # the reader still reads


def test_a_crash_leaves_unknown_only_what_was_handed_to_a_provider(engine: Engine, clock: FrozenClock) -> None:
    """The batch claimed is exactly what the workers send at once: no attempt waits, claimed,
    behind another one's provider call."""
    seed_directory(engine)
    store_playbook(engine, MANY, "many-desks")
    _desks(engine, 20)
    entered = threading.Event()
    release = threading.Event()

    class Stuck(Capture):
        def send(self, ping):  # type: ignore[no-untyped-def]
            entered.set()
            release.wait(10)
            return super().send(ping)

    eng = _engine_for(engine, clock, Stuck())
    run_id = eng.create_run("many-desks")
    eng.start_run(run_id)
    worker = threading.Thread(target=eng.dispatch_due)
    worker.start()
    assert entered.wait(10)
    with read_session(engine) as s:  # what a kill -9 would leave now
        dispatching = s.exec(select(Ping).where(Ping.run_id == run_id, Ping.state == "dispatching")).all()
    assert 0 < len(dispatching) <= eng.settings.dispatch_workers
    release.set()
    worker.join(30)
    eng.close()
